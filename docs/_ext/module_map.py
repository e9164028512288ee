"""``module-map`` directive: every module of a package with the first line of its docstring.

Read from the source files with :mod:`ast` (nothing is imported, so al_runner's torch is not
needed), so the map follows the tree as modules move and says what each one is.
"""

from __future__ import annotations

import ast
from pathlib import Path

from _rst import parse_rst
from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    return doc.strip().splitlines()[0] if doc else "(no module docstring)"


class ModuleMap(SphinxDirective):
    """A two-column table: module name, first docstring line."""

    required_arguments = 1  # the package folder, relative to the repository root

    def run(self) -> list[nodes.Node]:
        """The directive's nodes."""
        root = Path(self.env.srcdir).parent
        package = root / self.arguments[0]
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 35 65",
            "",
            "   * - module",
            "     - what it is",
        ]
        for path in sorted(package.rglob("*.py")):
            self.env.note_dependency(str(path))
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            text = _first_line(path).replace("|", r"\|")
            lines += [f"   * - ``{name}``", f"     - {text}"]
        return parse_rst(self, lines + [""], str(package))


def setup(app):  # noqa: ANN001, ANN201 (Sphinx's signature)
    """Register the directive with Sphinx."""
    app.add_directive("module-map", ModuleMap)
    return {"parallel_read_safe": True, "version": "1"}
