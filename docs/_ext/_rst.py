"""Parse generated reStructuredText from a directive, in a MyST or a reST page alike."""

from __future__ import annotations

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def parse_rst(directive: SphinxDirective, lines: list[str], source: str) -> list[nodes.Node]:
    """The nodes of ``lines`` (reST) parsed in the directive's document.

    In a MyST page the directive's state parses Markdown, so the reST goes inside an
    ``{eval-rst}`` fence there.
    """
    if str(directive.env.doc2path(directive.env.docname)).endswith(".md"):
        lines = ["````{eval-rst}", *lines, "````"]
    container = nodes.container()
    directive.state.nested_parse(StringList(lines, source=source), 0, container)
    return container.children
