"""API reference pages of irrepnet, generated at build time from the package itself.

One page per public top-level module or subpackage of irrepnet (``docs/api/generated/``,
git-ignored), with an autosummary table per module whose ``:toctree:`` makes
autosummary write one page per class and function. What is public:

- a module with ``__all__``: exactly those names;
- a module without: the classes and functions it defines, its module-level constants
  (top-level assignments to names without a leading underscore) and, for a package,
  what it re-exports from its own submodules;
- never a name with a leading underscore, nor a module with one in its path.

Each object is documented once, at its *home*: the shallowest public module below the
top level that exports it (``irrepnet.train.Trainer``, not ``irrepnet.train.loop``). Other
modules that export it link there. References that name another path to the same
object (a type hint's ``irrepnet.train.loop.Trainer``, a private module's
``irrepnet.graph._api.radius_graph``, a docstring's relative name) are resolved to the
home by the ``missing-reference`` handler; a reference to a name that imports nowhere
or is not documented still fails the ``-W`` build.

The same extension warns (an error under ``-W``) when a public class or function has no
docstring, and registers the docstrings' own section titles (``Shapes``,
``Shapes/irreps``...) with napoleon, which renders them as rubrics.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import types
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGE = "irrepnet"
# modules that are entry points, not API
SKIP_MODULES = {"irrepnet.__main__"}
# napoleon's own numpy sections; any other underlined title in a docstring is registered
# as a custom section (a rubric) so that docutils never sees a section title there
_NAPOLEON_SECTIONS = {
    "args", "arguments", "attention", "attributes", "caution", "danger", "error", "example",
    "examples", "hint", "important", "keyword args", "keyword arguments", "methods", "note",
    "notes", "other parameters", "parameters", "receive", "receives", "return", "returns",
    "raise", "raises", "references", "see also", "tip", "todo", "warning", "warnings", "warn",
    "warns", "yield", "yields",
}  # fmt: skip


# -- what is public --------------------------------------------------------------------------


def public_modules() -> list[str]:
    """Every importable module of the package without a private component, sorted."""
    pkg = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(pkg.__path__, PACKAGE + "."):
        if info.name in SKIP_MODULES or any(p.startswith("_") for p in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(names)


def _module_constants(module: types.ModuleType) -> list[str]:
    """Public names assigned at the top level of the module's own source."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return []
    names = []
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target]
        names += [t.id for t in targets if not t.id.startswith("_") and t.id != "logger"]
    return names


def _type_aliases(module: types.ModuleType) -> dict[str, str]:
    """``NAME: TypeAlias = value`` at the module's top level: name -> the value's source text."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return {}
    out = {}
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
            and "TypeAlias" in ast.unparse(node.annotation)
        ):
            out[node.target.id] = ast.unparse(node.value)
    return out


def _summary_text(text: str) -> str:
    """Cross-reference roles as plain literals: a summary is read outside its module's context."""
    return re.sub(r":[\w:]+:`~?(?:[^`<]*<)?([^`>]+)>?`", lambda m: f"``{m.group(1).split('.')[-1]}``", text)


def _defined_in(obj: object, modname: str, package: bool) -> bool:
    home = getattr(obj, "__module__", None) or ""
    return home == modname or (package and home.startswith(modname + "."))


def public_names(modname: str) -> list[str]:
    """The public names of one module (see the module docstring), in source order."""
    module = importlib.import_module(modname)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    package = hasattr(module, "__path__")
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or isinstance(obj, types.ModuleType):
            continue
        if (inspect.isclass(obj) or _is_function(obj)) and _defined_in(obj, modname, package):
            names.append(name)
    names += [n for n in _module_constants(module) if n not in names and hasattr(module, n)]
    return names


def _is_function(obj: object) -> bool:
    """A function, or one behind ``functools.wraps``-style wrappers (``lru_cache``, ``cache``)."""
    return inspect.isfunction(obj) or (hasattr(obj, "__wrapped__") and inspect.isfunction(inspect.unwrap(obj)))


def _kind(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if _is_function(obj) or inspect.isbuiltin(obj):
        return "function"
    return "data"


class ApiMap:
    """Where each public object is documented, and what each public module exports.

    Attributes
    ----------
    modules : dict of str to list of str
        module name -> its public names.
    home : dict of int to str
        ``id(obj)`` -> the full name it is documented under (classes and functions only).
    """

    def __init__(self) -> None:
        self.modules = {m: public_names(m) for m in public_modules()}
        self.home: dict[int, str] = {}
        self.objects: dict[int, object] = {}  # keeps the objects alive, so the ids stay theirs
        self.objects_by_name: dict[str, object] = {}
        by_depth = sorted((m for m in self.modules if m != PACKAGE), key=lambda m: (m.count("."), m))
        for modname in [*by_depth, PACKAGE]:
            module = importlib.import_module(modname)
            for name in self.modules[modname]:
                obj = getattr(module, name)
                if _kind(obj) in ("class", "exception", "function") and id(obj) not in self.home:
                    self.home[id(obj)] = f"{modname}.{name}"
                    self.objects[id(obj)] = obj
                    self.objects_by_name[f"{modname}.{name}"] = obj

    def page_of(self, modname: str) -> str:
        """The generated page a module's section is on: its top-level module or subpackage."""
        return ".".join(modname.split(".")[:2])


# -- page generation -------------------------------------------------------------------------


def _title(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


def _section(api: ApiMap, modname: str, level: str) -> str:
    module = importlib.import_module(modname)
    own: dict[str, list[str]] = {"class": [], "exception": [], "function": [], "data": []}
    linked: list[str] = []
    submodules: list[str] = []
    for name in api.modules[modname]:
        obj = getattr(module, name)
        kind = _kind(obj)
        full = f"{modname}.{name}"
        if isinstance(obj, types.ModuleType):
            submodules.append(obj.__name__)
        elif kind == "data":
            own["data"].append(name)
        elif api.home[id(obj)] == full:
            own[kind].append(full)
        else:
            linked.append(api.home[id(obj)])
    # a package may export a function of its submodule's name (irrepnet.data.molecules):
    # the function keeps the name in the index, the module's section is not indexed
    no_index = "   :no-index:\n" if modname in api.objects_by_name else ""
    out = [_title(modname, level), f".. automodule:: {modname}\n   :no-members:\n{no_index}"]
    # automodule made modname the current module: autosummary wants the names relative to it
    for kind, heading in (("class", "Classes"), ("exception", "Exceptions"), ("function", "Functions")):
        if own[kind]:
            rows = "".join(f"   {full[len(modname) + 1 :]}\n" for full in own[kind])
            out.append(f".. rubric:: {heading}\n\n.. autosummary::\n   :toctree: objects\n   :nosignatures:\n\n{rows}")
    if linked:
        # a plain list: autosummary refuses names below the current module that it does not own
        rows = "".join(f"- :py:obj:`{full}`: {_summary(api.objects_by_name[full])}\n" for full in linked)
        out.append(f".. rubric:: Re-exported, documented where they live\n\n{rows}")
    if submodules:
        rows = "".join(f"- :py:mod:`{m}`\n" for m in submodules)
        out.append(f".. rubric:: Modules\n\n{rows}")
    if own["data"]:
        out.append(".. rubric:: Constants\n")
        aliases = _type_aliases(module)
        for name in own["data"]:
            # a type alias shows what it stands for, as written (docutils cannot read it as a type)
            alias = f"   :annotation: = {aliases[name]}\n" if name in aliases else ""
            out.append(f".. autodata:: {modname}.{name}\n   :no-value:\n{alias}")
    return "\n".join(out)


def _summary(obj: object) -> str:
    """The first sentence-line of an object's docstring, for the lists of re-exports."""
    doc = (_own_docstring(obj) or "").strip()
    return _summary_text(doc.split("\n\n", 1)[0].replace("\n", " ")) if doc else ""


def write_pages(api: ApiMap, out_dir: Path) -> list[Path]:
    """Write one ``.rst`` page per top-level module or subpackage into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages: dict[str, list[str]] = {}
    for modname in api.modules:
        pages.setdefault(api.page_of(modname), []).append(modname)
    written = []
    for page, modnames in sorted(pages.items()):
        text = [".. This page is generated by docs/_ext/irrepnet_api.py; edit the docstrings.\n"]
        text.append(_section(api, page, "="))
        text += [_section(api, m, "-") for m in sorted(modnames) if m != page]
        path = out_dir / f"{page}.rst"
        content = "\n".join(text)
        # unchanged pages keep their mtime, so an incremental build does not reread them
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    for stale in set(out_dir.glob("*.rst")) - set(written):
        stale.unlink()
    return written


# -- docstring checks and napoleon sections ----------------------------------------------------


def _own_docstring(obj: object) -> str | None:
    doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
    if inspect.isclass(obj) and doc and doc.startswith(obj.__name__ + "("):
        return None  # a dataclass's generated signature, not a docstring
    return doc


def check_docstrings(api: ApiMap) -> None:
    """Warn for each public class or function without a docstring of its own."""
    for key, full in sorted(api.home.items(), key=lambda kv: kv[1]):
        if not (_own_docstring(api.objects[key]) or "").strip():
            logger.warning("public %s has no docstring: add one (numpy style) where it is defined", full)


def docstring_sections(package_dir: Path) -> list[str]:
    """Titles underlined with dashes in the package's sources that napoleon does not know."""
    found = set()
    for path in package_dir.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for above, line in zip(lines, lines[1:]):
            title = above.strip()
            if (
                title
                and set(line.strip()) == {"-"}
                and len(line.strip()) >= 3
                and title.lower() not in _NAPOLEON_SECTIONS
            ):
                found.add(title)
    return sorted(found)


def _text_of_data(app: Sphinx, what: str, name: str, obj: object, options, lines: list[str]) -> None:
    """``autodoc-process-docstring``, before napoleon: docstrings of data and attributes.

    Napoleon reads the first line of such a docstring as ``type: description``, which turns
    a doc-comment like ``(G, 1) 0e: the energy`` into a cross-reference to a class "(G, 1) 0e".
    Here their sections are converted as a module's would be, and the result is put back
    after napoleon (:func:`_restore_data`). A constant without a docstring of its own shows
    none, rather than its type's (``dict``'s).
    """
    if what not in ("data", "attribute", "property"):
        return
    from sphinx.ext.napoleon.docstring import NumpyDocstring

    inherited = {(inspect.getdoc(o) or "").strip() for o in (obj, type(obj))}
    if what == "data" and lines and "\n".join(lines).strip() in inherited:
        lines[:] = []
    text = NumpyDocstring(list(lines), app.config, app, "module", name, obj).lines() if lines else []
    _DATA_TEXT[(what, name)] = text


def _restore_data(app: Sphinx, what: str, name: str, obj: object, options, lines: list[str]) -> None:
    """``autodoc-process-docstring``, after napoleon: see :func:`_text_of_data`."""
    text = _DATA_TEXT.pop((what, name), None)
    if text is not None:
        lines[:] = text


_DATA_TEXT: dict[tuple[str, str], list[str]] = {}


def skip_inherited_docs(app: Sphinx, what: str, name: str, obj: object, skip: bool, options) -> bool | None:
    """``autodoc-skip-member``: leave out an override without a docstring of its own.

    Otherwise ``forward`` or ``extra_repr`` would show torch's text for the base method.
    (``autodoc_inherit_docstrings = False`` would too, but it also changes how dataclass
    signatures are read.)
    """
    if what in ("class", "exception") and inspect.isroutine(obj) and not getattr(obj, "__doc__", None):
        return True
    return None


def factory_defaults(app: Sphinx, what, name, obj, options, signature, return_annotation):
    """``autodoc-process-signature``: a dataclass field's ``default_factory`` shown as ``...``.

    Python shows it as ``<factory>``, which does not parse as a signature; Sphinx then splits
    the arguments at every comma (``dict[str`` | ``float]``) and warns about the pieces.
    """
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def public_bases(app: Sphinx, name: str, obj: object, options, bases: list) -> None:
    """``autodoc-process-bases``: show a private base class's public bases instead of it."""
    out: list = []
    todo = list(bases)
    while todo:
        base = todo.pop(0)
        if getattr(base, "__name__", "").startswith("_") and getattr(base, "__module__", "").startswith(PACKAGE):
            todo[:0] = [b for b in base.__bases__ if b is not object] or []
        elif base not in out:
            out.append(base)
    bases[:] = out


_ITEM = re.compile(r"^(``[^`]+``(?:,\s*``[^`]+``)*)( +)(\S.*)$")
_BORDER = re.compile(r"^=+( +=+)+\s*$")


def _plain_tables(app: Sphinx, what: str, name: str, obj: object, options, lines: list[str]) -> None:
    """``autodoc-process-docstring``: the docstrings' plain two-column tables as definition lists.

    Many docstrings document keys as aligned text (the term in literals, the description
    from a fixed column, continuation lines indented to it); reST reads that as broken
    paragraphs. A paragraph made only of such items and their continuations becomes a
    definition list; everything else is left alone (bordered simple tables included).
    """
    out: list[str] = []
    i, in_table = 0, False
    while i < len(lines):
        if _BORDER.match(lines[i]):
            # a bordered table runs from a border to a border followed by a blank line
            in_table = not in_table or (i + 1 < len(lines) and lines[i + 1].strip() != "")
        block_start = i == 0 or not lines[i - 1].strip() or set(lines[i - 1].strip()) == {"-"}
        if in_table or not block_start or not _ITEM.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        j, items = i, []
        while j < len(lines) and lines[j].strip():
            m = _ITEM.match(lines[j])
            if m:
                items.append([m.group(1), [m.group(3)]])
            elif lines[j].startswith("        ") and items:
                items[-1][1].append(lines[j].strip())
            else:
                break
            j += 1
        if len(items) < 2 or (j < len(lines) and lines[j].strip()):
            out.append(lines[i])  # not a table: a paragraph that starts with a literal
            i += 1
            continue
        for term, text in items:
            out += [term, *("   " + t for t in text)]
        out.append("")
        i = j
    lines[:] = out


# -- resolving other paths to the same object --------------------------------------------------


def _lookup(target: str) -> tuple[object, list[str]] | None:
    """Import the longest module prefix of ``target``; walk the rest as attributes.

    Returns the first object on the way that has a home, and the attribute names after it.
    """
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for i, attr in enumerate(parts[cut:]):
            obj = getattr(obj, attr, _MISSING)
            if obj is _MISSING:
                return None
            if id(obj) in _API.home:
                return obj, parts[cut + i + 1 :]
        return None
    return None


_MISSING = object()


def _data_homes(target: str) -> list[str]:
    """Where a constant reached as ``target`` (a re-export, say) is documented."""
    modname, _, name = target.rpartition(".")
    try:
        value = getattr(importlib.import_module(modname), name)
    except (ImportError, AttributeError, ValueError):
        return []
    homes = []
    for other, names in _API.modules.items():
        if other != modname and name in names and getattr(importlib.import_module(other), name, _MISSING) is value:
            homes.append(f"{other}.{name}")
    return homes


def resolve_alias(app: Sphinx, env, node, contnode):
    """``missing-reference``: map another path to a documented irrepnet object to its home."""
    if node.get("refdomain") != "py" or _API is None:
        return None
    target = node["reftarget"].lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module:
        candidates.append(f"{module}.{target}")
        if cls:
            candidates.append(f"{module}.{cls}.{target}")
    # a relative name in a docstring means the module the documented object was defined in
    owner = _API.objects_by_name.get(node["refdoc"].rsplit("/", 1)[-1])
    if owner is not None:
        candidates.append(f"{owner.__module__}.{target}")
        candidates.append(f"{owner.__module__}.{owner.__qualname__}.{target}")
    domain = env.get_domain("py")
    for candidate in dict.fromkeys(c for c in candidates if c.startswith(PACKAGE + ".")):
        found = _lookup(candidate)
        new_targets = [candidate] if candidate != target else []
        if found:
            obj, rest = found
            new_targets.insert(0, ".".join([_API.home[id(obj)], *rest]))
        elif found is None:
            new_targets += _data_homes(candidate)
        for new_target in new_targets:
            for reftype in dict.fromkeys([node["reftype"], "obj"]):
                resolved = domain.resolve_xref(env, node["refdoc"], app.builder, reftype, new_target, node, contnode)
                if resolved is not None:
                    return resolved
    return None


_API: ApiMap | None = None


def on_config_inited(app: Sphinx, config) -> None:
    """Register the docstrings' section titles with napoleon; write the API pages.

    The pages are written here, before Sphinx lists the source files, so that autosummary
    (at ``builder-inited``) sees them and writes the per-object pages they ask for.
    """
    global _API
    known = {s if isinstance(s, str) else s[0] for s in config.napoleon_custom_sections or []}
    extra = [s for s in docstring_sections(Path(importlib.import_module(PACKAGE).__file__).parent) if s not in known]
    config.napoleon_custom_sections = [*(config.napoleon_custom_sections or []), *extra]
    _API = ApiMap()
    out_dir = Path(app.srcdir) / "api" / "generated"
    write_pages(_API, out_dir)
    # autosummary never removes the page of an object that moved or went: do it here
    for stale in (out_dir / "objects").glob("*.rst"):
        if stale.stem.split(".")[0] == PACKAGE and ".".join(stale.stem.split(".")) not in _API.objects_by_name:
            stale.unlink()


def on_builder_inited(app: Sphinx) -> None:
    """Warn for public names without a docstring (here, where -W turns warnings into errors)."""
    check_docstrings(_API)


def setup(app: Sphinx) -> dict:
    """Sphinx entry point."""
    app.connect("config-inited", on_config_inited)
    app.connect("builder-inited", on_builder_inited)
    app.connect("missing-reference", resolve_alias)
    app.connect("autodoc-process-docstring", _plain_tables, priority=300)
    app.connect("autodoc-process-docstring", _text_of_data, priority=400)  # napoleon: 500
    app.connect("autodoc-process-docstring", _restore_data, priority=600)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("autodoc-skip-member", skip_inherited_docs)
    app.connect("autodoc-process-signature", factory_defaults)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
