"""``results-table`` directive: a table rendered from a benchmark's JSON results.

Benchmarks write ``benchmarks/results/<name>.json``; a report page shows it with::

    ```{results-table} ../../benchmarks/results/<name>.json
    :rows: summary.rows
    :columns: method=Method, mae=MAE, coverage=90% coverage
    :digits: 3
    ```

The file is either a list of records (one dict per row) or a dict holding one under the
dotted path ``:rows:`` (default ``rows``). ``:columns:`` picks and orders the keys (``key`` or
``key=Header``; default: every key of the first row). Floats are printed with ``:digits:``
decimals (default 3); missing values as a dash. When the file's top level has ``date``,
``commit`` or ``command``, they are printed under the table, so a rerun of the benchmark
changes the page without touching its prose. The page is rebuilt when the JSON changes.

``:where: at=final, cut=0.2`` keeps the rows whose values print as given.
``:keys: a=Label, b`` instead renders top-level values of the file as a two-column table
(quantity, value): the single numbers a benchmark reports beside its table.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from _rst import parse_rst
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective


def _escape(text: str) -> str:
    return re.sub(r"([\\*`_|])", r"\\\1", text)


def _cell(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, list):
        return ", ".join(_cell(v, digits) for v in value)
    return _escape(str(value))


def _rows(data: object, path: str | None, source: str) -> list[dict]:
    if isinstance(data, list):
        rows = data
    else:
        rows = data
        for key in (path or "rows").split("."):
            if not isinstance(rows, dict) or key not in rows:
                raise ExtensionError(f"{source}: no {path or 'rows'!r} in the JSON")
            rows = rows[key]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ExtensionError(f"{source}: {path or 'rows'!r} is not a list of records")
    return rows


def _columns(spec: str | None, rows: list[dict]) -> list[tuple[str, str]]:
    if not spec:
        return [(key, key) for key in (rows[0] if rows else {})]
    columns = []
    for item in spec.split(","):
        key, _, header = item.strip().partition("=")
        columns.append((key.strip(), header.strip() or key.strip()))
    return columns


class ResultsTable(SphinxDirective):
    """A ``list-table`` of the records in a JSON file."""

    required_arguments = 1
    option_spec = {
        "rows": directives.unchanged,
        "columns": directives.unchanged,
        "digits": directives.nonnegative_int,
        "keys": directives.unchanged,
        "where": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        """The directive's nodes."""
        rel, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        source = self.arguments[0]
        self.env.note_dependency(path)
        if not Path(path).is_file():
            raise self.error(f"results-table: {source} does not exist")
        data = json.loads(Path(path).read_text())
        if "keys" in self.options:
            if not isinstance(data, dict):
                raise self.error(f"results-table: {source} has no top-level keys")
            rows = []
            for key, label in _columns(self.options["keys"], []):
                if key not in data:
                    raise self.error(f"results-table: no {key!r} in {source}")
                rows.append({"quantity": label, "value": data[key]})
            columns = [("quantity", "quantity"), ("value", "value")]
        else:
            rows = _rows(data, self.options.get("rows"), source)
            for key, value in _columns(self.options.get("where"), []):
                rows = [r for r in rows if str(r.get(key)) == value]
            columns = _columns(self.options.get("columns"), rows)
        digits = self.options.get("digits", 3)
        lines = [".. list-table::", "   :header-rows: 1", ""]
        lines.append("   * - " + _escape(columns[0][1]))
        lines += ["     - " + _escape(header) for _, header in columns[1:]]
        for row in rows:
            cells = [_cell(row.get(key), digits) for key, _ in columns]
            lines.append("   * - " + cells[0])
            lines += ["     - " + cell for cell in cells[1:]]
        lines.append("")
        meta = data if isinstance(data, dict) else {}
        facts = [f"{key} {_escape(str(meta[key]))}" for key in ("date", "commit") if key in meta]
        note = f"Data: ``{Path(rel).name}``" + (f" ({', '.join(facts)})" if facts else "")
        if "command" in meta:
            note += f"; command: ``{meta['command']}``"
        lines += [note + ".", ""]
        return parse_rst(self, lines, source)


def setup(app):  # noqa: ANN001, ANN201 (Sphinx's signature)
    """Register the directive with Sphinx."""
    app.add_directive("results-table", ResultsTable)
    return {"parallel_read_safe": True, "version": "1"}
