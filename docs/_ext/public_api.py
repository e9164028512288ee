"""``public-api`` directive: autodoc entries for every name in a package's ``__all__``.

The reference documents ``palm_bayes.fit``, ``palm_bayes.PalmFit`` ... by their public names,
not by the module that happens to define them, so moving modules changes nothing here, and a
name added to ``__all__`` appears without editing a page::

    ```{public-api} palm_bayes
    ```
"""

from __future__ import annotations

import importlib
import inspect

from _rst import parse_rst
from docutils import nodes
from sphinx.util.docutils import SphinxDirective

SKIP = {"__version__"}


def _kind(obj: object) -> str:
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "data"


class PublicAPI(SphinxDirective):
    """Render ``autoclass`` / ``autofunction`` / ``autodata`` for ``module.__all__``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """The directive's nodes."""
        name = self.arguments[0]
        module = importlib.import_module(name)
        groups: dict[str, list[str]] = {"function": [], "class": [], "data": []}
        for public in module.__all__:
            if public not in SKIP:
                groups[_kind(getattr(module, public))].append(public)
        lines: list[str] = []
        titles = {"function": "Functions", "class": "Classes", "data": "Constants"}
        for kind, names in groups.items():
            if not names:
                continue
            lines += [".. rubric:: " + titles[kind], ""]
            for public in sorted(names, key=str.lower):
                target = f"{name}.{public}"
                if kind == "class":
                    lines += [f".. autoclass:: {target}", "   :members:", ""]
                elif kind == "function":
                    lines += [f".. autofunction:: {target}", ""]
                else:
                    lines += [f".. autodata:: {target}", "   :no-value:", ""]
        return parse_rst(self, lines, f"public-api {name}")


def setup(app):  # noqa: ANN001, ANN201 (Sphinx's signature)
    """Register the directive with Sphinx."""
    app.add_directive("public-api", PublicAPI)
    return {"parallel_read_safe": True, "version": "1"}
