"""Sphinx configuration of irrepnet's documentation site.

Built by ``make docs`` (and CI) with ``-W --keep-going``: every warning is an error.
Three things are generated at build time into git-ignored folders:

- the API pages, from the package's public names (``_ext/irrepnet_api.py`` ->
  ``api/generated/``, then autosummary's one page per object);
- the results pages, from ``benchmarks/results/*/results.json`` (``generate_results.py``
  -> ``results/generated/``);
- the tutorials, copied from ``tutorials/*.ipynb`` with their stored outputs
  (``tutorials/notebooks/``; myst-nb renders them without executing them).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import irrepnet  # noqa: E402  (after the path set-up, as the extension needs it too)

project = "irrepnet"
author = "the irrepnet authors"
copyright = "the irrepnet authors"  # noqa: A001  (Sphinx's name)
release = irrepnet.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",  # MyST Markdown pages and the notebooks (it loads myst_parser itself)
    "sphinx-mathjax-offline",  # MathJax copied into the site: the math renders without a network
    "irrepnet_api",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_ext", "**.ipynb_checkpoints", "README.md"]
templates_path = ["_templates"]

# -- the API reference ---------------------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = False
# class pages: docs/_templates/autosummary/class.rst (documented members, the bases)
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# type hints as written (``Tensor``, ``Irreps``), not expanded through aliases
autodoc_typehints_format = "short"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
# parameter and return types as written (``{"sum", "mean"}``, ``(n, 3) array``): prose, not
# cross-references; the signature above them carries the linked type hints
napoleon_use_param = False
napoleon_use_rtype = False
# the docstrings' own sections (Shapes, Shapes/irreps, ...) are added by irrepnet_api
napoleon_custom_sections: list = []

# Every reference must resolve: a broken cross-reference fails the -W build. There is no
# network at build time, so intersphinx cannot fetch other projects' inventories; their
# names stay plain text. Only external packages are listed here, never irrepnet.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|e3nn|o3|numpy|np|matplotlib|ase|tqdm)(\..*)?"),  # no inventory offline
    (r"py:.*", r"(Tensor|Irreps|Module|ndarray|Figure|Axes|Atoms|dtype|device)"),  # their short forms
    # the standard library's inventory is not there either
    (r"py:.*", rf"({'|'.join(sorted(sys.stdlib_module_names))})(\..*)?"),
    (r"py:.*", r"(Path|Callable|Iterable|Iterator|Mapping|Sequence|MutableMapping|Namespace|Enum)"),
    (r"py:.*", r"(typing|typing_extensions|types)\..*"),  # typing internals
    (r"py:class", r"(optional|default.*|array-like|callable)"),  # numpydoc type words
]

# -- Markdown and notebooks ------------------------------------------------------------------

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks' stored outputs; tests/test_tutorials.py executes them
nb_merge_streams = True

# -- HTML --------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"irrepnet {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]


# -- generated sources ---------------------------------------------------------------------------


def copy_tutorials(out_dir: Path) -> None:
    """Copy ``tutorials/*.ipynb`` into the docs source (myst-nb reads only the source tree)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted((ROOT / "tutorials").glob("*.ipynb"))
    for src in sources:
        dest = out_dir / src.name
        if not dest.is_file() or dest.read_bytes() != src.read_bytes():
            shutil.copy2(src, dest)
    for stale in set(out_dir.glob("*.ipynb")) - {out_dir / s.name for s in sources}:
        stale.unlink()


def generate_results(out_dir: Path) -> None:
    """Run ``docs/generate_results.py``'s ``generate(out_dir)`` when the script exists.

    Imported by path (``docs/`` is no package). An exception in it propagates: Sphinx
    then stops with the traceback instead of building a site without results.
    """
    script = DOCS / "generate_results.py"
    if not script.is_file():
        return
    spec = importlib.util.spec_from_file_location("irrepnet_docs_generate_results", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(out_dir)


copy_tutorials(DOCS / "tutorials" / "notebooks")
generate_results(DOCS / "results" / "generated")
