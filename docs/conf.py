"""Sphinx configuration of the palm-bayes documentation (``make docs``).

Built with warnings as errors (``sphinx-build -W``). Pages are MyST Markdown; the API
reference is autodoc over the public names with numpydoc; the CLI pages come from the two
argparse parsers; the architecture page and the report tables are generated at build time
(``docs/_ext``). No network is used: intersphinx is not enabled.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the checkout's packages, not an installed copy
sys.path.insert(0, str(DOCS / "_ext"))

project = "palm-bayes"
author = "the palm-bayes authors"
copyright = "2026, the palm-bayes authors"  # noqa: A001 (Sphinx's name)

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinxarg.ext",
    "public_api",
    "import_contracts",
    "results_table",
    "module_map",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = "palm-bayes"
