"""Sphinx configuration of the gcalib documentation site (``make docs``).

The source tree is this folder: ``index.md`` includes the repository's README, ``notebooks`` is a link to
the notebook series (executed at build time by myst-nb), ``data/README.md`` a link to the data notes.
Everything is built offline and the pages load nothing from elsewhere: no intersphinx, formulas as MathML
(no MathJax), a theme installed from pip. ``_ext/gcalib_docs.py`` writes the generated fragments (error
table, results, solutions), maps links to repository paths onto pages, turns the explorers' widget outputs
into static figures and renders the formulas.
"""
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

import gcalib  # noqa: E402  (the path above makes the checkout importable without an install)
from gcalib_docs import api_model  # noqa: E402

project = "gcalib"
author = "gcalib authors"
copyright = "gcalib authors"
release = gcalib.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "gcalib_docs",
]

root_doc = "index"
include_patterns = [
    "index.md",
    "errors.md",
    "results.md",
    "api.md",
    "solutions.md",
    "api/*.rst",
    "notebooks/README.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "data/README.md",
]
exclude_patterns = ["_build", "_generated", "**/.ipynb_checkpoints", "notebooks/_executed"]
templates_path = ["_templates"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# Notebooks: executed on every build, in their own folder (so relative paths such as results/ and ../data
# work as in Jupyter), failing the build on the first cell that raises.
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_in_temp = False
# No widget JavaScript from a CDN: gcalib_docs replaces each widget view by the figures its state holds.
nb_ipywidgets_js = {}
nb_merge_streams = True

autosummary_generate = True
autosummary_ignore_module_all = False
autosummary_imported_members = True
autosummary_context = {"gcalib_api": api_model()}
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True

# Formulas are converted to MathML at build time by gcalib_docs: no MathJax to fetch or ship.
html_math_renderer = "mathml"

html_theme = "furo"
html_title = f"gcalib {release}"
html_static_path = ["_static"]
html_css_files = ["gcalib.css"]
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
html_copy_source = False

suppress_warnings = [
    # README.md is the repository's landing page and starts its sections at "##" under one "#" title;
    # the included notebooks' markdown keeps its own heading levels.
    "myst.header",
]

# Repository paths that README files link to and that are not pages themselves (see gcalib_docs.RepositoryLinks).
gcalib_link_map = {"notebooks/solutions": "solutions"}
