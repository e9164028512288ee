"""``import-contracts`` directive: the architecture, read from ``[tool.importlinter]``.

``lint-imports`` (run by ``make test``) enforces the contracts in ``pyproject.toml``; this
directive renders the same contracts, so the architecture page cannot disagree with what is
checked. A ``layers`` contract becomes a diagram (top layer first, each layer may import only
the layers below it) and a list; ``forbidden`` and ``independence`` contracts become sentences.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from _rst import parse_rst
from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _modules(layer: str) -> list[str]:
    """The module names of one layer entry (``a | b`` independent, ``a : b`` not)."""
    layer = re.sub(r"^\((.*)\)$", r"\1", layer.strip())  # optional layers are in brackets
    return [part.strip() for part in re.split(r"[|:]", layer) if part.strip()]


def _layer_text(layer: str, prefix: str) -> str:
    """One layer as written (``|``: independent siblings, ``:``: siblings that may import)."""
    separator = " | " if "|" in layer else " : "
    return separator.join(m.removeprefix(prefix) for m in _modules(layer))


def _code(names: list[str]) -> str:
    return ", ".join(f"``{n}``" for n in names)


def _layers(contract: dict) -> list[str]:
    containers = contract.get("containers", [])
    prefix = f"{containers[0]}." if len(containers) == 1 else ""
    rows = [_layer_text(layer, prefix) for layer in contract["layers"]]
    width = max(len(row) for row in rows)
    diagram = ["::", ""]
    for i, row in enumerate(rows):
        diagram.append("   " + row.center(width))
        if i < len(rows) - 1:
            diagram.append("   " + "|".center(width))
            diagram.append("   " + "v".center(width))
    lines = []
    if containers:
        lines += [
            f"Inside {_code(containers)}, top layer first: a module may import the "
            "layers below its own, never those above. Modules separated by ``|`` in one "
            "layer do not import each other (``:`` siblings may).",
            "",
        ]
    else:
        lines += [
            "Top layer first: a module may import the layers below its own, never those "
            "above. Modules separated by ``|`` in one layer do not import each other "
            "(``:`` siblings may).",
            "",
        ]
    lines += diagram + [""]
    return lines


def _forbidden(contract: dict) -> list[str]:
    lines = [
        f"{_code(contract['source_modules'])} must not import "
        f"{_code(contract['forbidden_modules'])}.",
        "",
    ]
    ignored = contract.get("ignore_imports", [])
    if ignored:
        lines += ["Allowed exceptions: " + _code(ignored) + ".", ""]
    return lines


def _independence(contract: dict) -> list[str]:
    return [f"{_code(contract['modules'])} import nothing of each other.", ""]


RENDER = {"layers": _layers, "forbidden": _forbidden, "independence": _independence}


class ImportContracts(SphinxDirective):
    """Render every contract of ``pyproject.toml``'s ``[tool.importlinter]``."""

    optional_arguments = 1  # the pyproject.toml, relative to the docs folder

    def run(self) -> list[nodes.Node]:
        """The directive's nodes."""
        path = Path(self.env.srcdir) / (
            self.arguments[0] if self.arguments else "../pyproject.toml"
        )
        self.env.note_dependency(str(path.resolve()))
        config = tomllib.loads(path.read_text())["tool"]["importlinter"]
        lines = [f"Root packages: {_code(config['root_packages'])}.", ""]
        for number, contract in enumerate(config["contracts"], 1):
            kind = contract["type"]
            title = f"{number}. {contract['name']} ({kind})"
            lines += [".. rubric:: " + title.replace("*", r"\*"), ""]
            render = RENDER.get(kind)
            lines += render(contract) if render else [f"A ``{kind}`` contract.", ""]
        return parse_rst(self, lines, str(path))


def setup(app):  # noqa: ANN001, ANN201 (Sphinx's signature)
    """Register the directive with Sphinx."""
    app.add_directive("import-contracts", ImportContracts)
    return {"parallel_read_safe": True, "version": "1"}
