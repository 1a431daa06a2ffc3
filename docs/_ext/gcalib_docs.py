"""Sphinx extension of the gcalib site: generated pages, repository links, static widget figures, MathML.

- ``builder-inited``: writes ``_generated/errors.md`` (the README's error table as its own page),
  ``_generated/results.md`` (the committed comparisons in ``notebooks/results/`` and whatever
  ``make bench`` left in ``benchmarks/results/``) and ``_generated/solutions.md`` (the exercise solutions).
- ``RepositoryLinks``: links written as repository paths (``notebooks/01_....ipynb``) go to their pages.
- ``api_model`` (read by ``conf.py``): which names each API page documents.
- ``doctree-read``: an executed notebook's widget views cannot run in a static page; each one is replaced
  by the images its saved widget state holds (the explorer's figure as the notebook left it) and a line with
  its controls' values, and the widget state itself is dropped from the page.
- the ``mathml`` math renderer: formulas become MathML at build time (docutils' LaTeX converter), so
  pages need no MathJax, no script and no web font, and browsers draw them natively.
"""
from __future__ import annotations

import ast
import html
import importlib
import inspect
import json
import math
import pkgutil
import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging

from gcalib.training import tables

DOCS = Path(__file__).resolve().parent.parent
REPO = DOCS.parent
GENERATED = DOCS / "_generated"
ERRORS_HEADING = re.compile(r"^## +Common errors\b.*$", re.MULTILINE)
WIDGET_VIEW = '<script type="application/vnd.jupyter.widget-view+json">'
logger = logging.getLogger(__name__)


def documented_packages() -> list[str]:
    """``gcalib`` and its public subpackages (folders with an ``__init__.py``), in name order."""
    package = importlib.import_module("gcalib")
    subpackages = sorted(
        f"gcalib.{info.name}" for info in pkgutil.iter_modules(package.__path__) if info.ispkg and not info.name.startswith("_")
    )
    return ["gcalib", *subpackages]


def _assigned_names(module) -> list[str]:
    """Public names bound by a top-level assignment in the module's own source."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return []
    names = []
    for statement in tree.body:
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target] if isinstance(statement, ast.AnnAssign) else []
        names += [target.id for target in targets if isinstance(target, ast.Name)]
    return [name for name in names if not name.startswith("_")]


def _public_names(module) -> list[str]:
    """``__all__``, else the classes and functions defined in the module and its public assignments."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    defined = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ == module.__name__
    ]
    return defined + [name for name in _assigned_names(module) if name not in defined]


def api_model() -> dict[str, dict]:
    """What each API page documents, for the autosummary template ``package.rst``.

    ``gcalib`` documents every name of its ``__all__``; each subpackage its ``__all__`` and its public modules;
    each module its ``__all__`` or the names it defines. An object is documented once, on the first page that
    exports it (the top-level package first); later pages link to it (``linked``), so that Sphinx sees one
    description per object.
    """
    documented: dict[int, str] = {}
    pages: dict[str, dict] = {}

    def page(fullname: str, modules: list[str]) -> None:
        module = importlib.import_module(fullname)
        entry = {"classes": [], "exceptions": [], "functions": [], "data": [], "linked": [], "modules": modules}
        for name in _public_names(module):
            value = getattr(module, name)
            if inspect.ismodule(value):
                continue
            key = id(value)
            if key in documented and not isinstance(value, (int, float, str, bool, type(None))):
                entry["linked"].append((name, documented[key]))
                continue
            documented[key] = f"{fullname}.{name}"
            if inspect.isclass(value):
                entry["exceptions" if issubclass(value, BaseException) else "classes"].append(name)
            elif callable(value):
                entry["functions"].append(name)
            else:
                entry["data"].append(name)
        pages[fullname] = entry

    packages = documented_packages()
    page("gcalib", [name.split(".")[-1] for name in packages[1:]])
    for package_name in packages[1:]:
        package = importlib.import_module(package_name)
        modules = sorted(info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_"))
        page(package_name, modules)
        for name in modules:
            page(f"{package_name}.{name}", [])
    return pages


def _write_if_changed(path: Path, text: str) -> None:
    """Rewrite a generated fragment only when it changed, so that unchanged pages are not rebuilt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def errors_section(readme: str) -> str:
    """The README's ``## Common errors ...`` section, up to the next ``## `` heading, as a page of its own."""
    match = ERRORS_HEADING.search(readme)
    if match is None:
        raise RuntimeError(
            "README.md has no '## Common errors ...' section; docs/errors.md publishes that section as the "
            "site's error page. Restore the heading or change ERRORS_HEADING in docs/_ext/gcalib_docs.py."
        )
    body = readme[match.end():]
    following = re.search(r"^## ", body, re.MULTILINE)
    if following is not None:
        body = body[: following.start()]
    return "# " + match.group(0)[3:].strip() + "\n" + body.rstrip() + "\n"


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _cell(value) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{key} {_number(item)}" for key, item in value.items())
    elif isinstance(value, list):
        value = ", ".join(_number(item) for item in value)
    else:
        value = _number(value)
    return value.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """gcalib's Markdown table, ended by a newline so that tables can be joined into a page."""
    return tables.markdown_table(header, rows) + "\n"


COMPARISON_METRICS = [
    ("linear_acc", "linear"),
    ("knn_acc_k20", "kNN k=20"),
    ("knn_acc_k200", "kNN k=200"),
    ("domain_acc", "domain"),
    ("heldout_domain_acc", "held-out-domain class"),
]


def comparison_tables(data: dict) -> str:
    """A ``robustness.json``: per setting, methods × metrics as mean ± sample std over seeds."""
    out = []
    for setting, methods in data["runs"].items():
        options = data.get("settings", {}).get(setting) or {}
        described = ", ".join(f"`{key}={value}`" for key, value in options.items()) or "the dataset's recipe"
        out.append(f"**{setting}** ({described})\n")
        metrics = [(key, label) for key, label in COMPARISON_METRICS if any(key in run for runs in methods.values() for run in runs)]
        rows = []
        for method, runs in methods.items():
            row = [method, str(len(runs))]
            for key, _ in metrics:
                values = [run[key] for run in runs if isinstance(run.get(key), (int, float))]
                row.append(tables.mean_std_text(values) if values else "—")
            rows.append(row)
        out.append(markdown_table(["method", "seeds", *(label for _, label in metrics)], rows))
    return "\n".join(out)


def sweep_tables(data: dict) -> str:
    """A ``sweep.json``: its summary rows and the scalar statistics (Spearman correlations, spreads)."""
    summary = data["summary"]
    keys = list(summary[0])
    out = [markdown_table(keys, [[_cell(row.get(key, "")) for key in keys] for row in summary])]
    scalars = {key: value for key, value in data.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if scalars:
        out.append("\n".join(f"- `{key}`: {_number(value)}" for key, value in scalars.items()) + "\n")
    reference = data.get("reference")
    if isinstance(reference, dict):
        out.append("Random-init reference: " + _cell(reference) + "\n")
    return "\n".join(out)


def generic_tables(data: dict) -> str:
    """Any benchmark JSON: lists of records as tables, the other values as a list."""
    out, scalars = [], []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            header = list(dict.fromkeys(column for item in value for column in item))
            out.append(f"`{key}`:\n\n" + markdown_table(header, [[_cell(item.get(column, "")) for column in header] for item in value]))
        else:
            scalars.append(f"- `{key}`: {_cell(value)}")
    if scalars:
        out.insert(0, "\n".join(scalars) + "\n")
    return "\n".join(out)


def results_fragment(repo: Path = REPO) -> str:
    out = ["## Committed comparisons\n"]
    committed = sorted((repo / "notebooks" / "results").glob("*.json"))
    if not committed:
        out.append("This checkout holds no `notebooks/results/*.json`.\n")
    for path in committed:
        data = json.loads(path.read_text(encoding="utf-8"))
        seeds = data.get("seeds")
        facts = [f"dataset `{data['dataset']}`" if "dataset" in data else "", f"seeds {seeds}" if seeds else ""]
        out.append(f"### `notebooks/results/{path.name}`\n")
        out.append("; ".join(fact for fact in facts if fact) + "\n")
        if "runs" in data and isinstance(data["runs"], dict):
            out.append(comparison_tables(data))
        elif "summary" in data:
            out.append(sweep_tables(data))
        else:
            out.append(generic_tables(data))
    out.append("## Benchmarks in this checkout\n")
    benchmarks = sorted((repo / "benchmarks" / "results").glob("*.json"))
    if not benchmarks:
        out.append(
            "No `benchmarks/results/*.json` here: `make bench` writes them (the folder is not tracked by git). "
            "The README's measured tables (memory of the sharded plan, timings) stay on the [front page](index.md).\n"
        )
    for path in benchmarks:
        data = json.loads(path.read_text(encoding="utf-8"))
        out.append(f"### `benchmarks/results/{path.name}`\n")
        out.append(generic_tables(data))
    return "\n".join(out)


def write_generated(app) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    _write_if_changed(GENERATED / "errors.md", errors_section(readme))
    _write_if_changed(GENERATED / "results.md", results_fragment())
    _write_if_changed(GENERATED / "solutions.md", solutions_fragment())


def widget_parts(state: dict, model_id: str) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """The images (format, base64 data), control values and texts (HTML and Label widgets, such as a
    progress bar's) under a widget, depth first."""
    images, controls, texts, seen = [], [], [], set()

    def visit(reference: str) -> None:
        model_id = reference.removeprefix("IPY_MODEL_")
        model = state.get(model_id)
        if model is None or model_id in seen:
            return
        seen.add(model_id)
        fields = model.get("state", {})
        name = model.get("model_name", "")
        if name == "ImageModel":
            buffers = {tuple(buffer["path"]): buffer for buffer in model.get("buffers", [])}
            buffer = buffers.get(("value",))
            if buffer is not None and buffer.get("encoding") == "base64":
                images.append((fields.get("format", "png"), buffer["data"]))
        elif name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
            text = html.unescape(re.sub(r"<[^>]+>", "", str(fields.get("value", "")))).strip()
            if text:
                texts.append(text)
        elif "description" in fields and fields.get("description") and ("value" in fields or "index" in fields):
            value = fields.get("value")
            labels = fields.get("_options_labels")
            if labels is not None and isinstance(fields.get("index"), int):
                value = labels[fields["index"]]
            if not isinstance(value, (dict, list)):
                label = re.sub(r"<[^>]+>", "", str(fields["description"])).strip()
                controls.append(f"{label} {_number(value)}")
        for child in fields.get("children", []):
            visit(child)

    visit(model_id)
    return images, controls, texts


def static_widgets(app, doctree) -> None:
    from myst_nb.sphinx_ import NbMetadataCollector

    env = app.env
    js_files = NbMetadataCollector.get_js_files(env, env.docname)
    saved = js_files.pop("ipywidgets_state", None)
    views = [node for node in doctree.findall(nodes.raw) if node.astext().startswith(WIDGET_VIEW)]
    if not views:
        return
    state = json.loads(saved[1]["body"])["state"] if saved else {}
    for node in views:
        view = json.loads(node.astext()[len(WIDGET_VIEW): -len("</script>")])
        images, controls, texts = widget_parts(state, view["model_id"])
        container = nodes.container(classes=["widget-snapshot"])
        for index, (fmt, data) in enumerate(images):
            container += nodes.image(uri=f"data:image/{fmt};base64,{data}", alt=f"widget figure {index + 1}")
        if images:
            text = "Static snapshot of an interactive widget; run the notebook in Jupyter to use its controls"
            container += nodes.paragraph(text=text + (f" ({'; '.join(controls)})." if controls else "."))
        elif texts:
            container += nodes.literal_block(text=" ".join(texts))  # a progress bar's final state, for instance
        else:
            container += nodes.paragraph(text="Interactive widget: it needs a running kernel; open the notebook in Jupyter.")
        node.replace_self(container)


class RepositoryLinks(SphinxPostTransform):
    """Resolve markdown links written as repository paths to the site's pages.

    ``docs/notebooks`` and ``docs/data/README.md`` are links into the repository, and Sphinx resolves links
    to real paths, so a link such as ``notebooks/01_....ipynb`` (in the README) or ``01_....ipynb`` (in
    ``notebooks/README.md``) reaches myst as an absolute path outside the source folder. This transform maps
    such a path, taken relative to the repository, to the page of the same name, or through the
    ``gcalib_link_map`` setting (repository path -> page) for folders and files that are not pages. Links it
    cannot map are left to myst, which reports them as missing references.
    """

    default_priority = 5  # before myst's reference resolver

    def run(self, **kwargs) -> None:
        env = self.env
        link_map = {key.strip("/"): value for key, value in self.config.gcalib_link_map.items()}
        for node in self.document.findall(addnodes.pending_xref):
            if node.get("reftype") != "myst":
                continue
            target = node["reftarget"]
            if node.get("refdomain") == "doc":
                path = Path(target)
                if not path.is_absolute():
                    continue
                anchor = node.get("reftargetid")
            elif node.get("refdomain") is None and "://" not in target and not target.startswith("#"):
                target, _, anchor = target.partition("#")
                source = Path(node.source or env.doc2path(node.get("refdoc", env.docname))).resolve()
                path = (source.parent / target).resolve()
            else:
                continue
            try:
                relative = path.relative_to(REPO).as_posix()
            except ValueError:
                continue
            for suffix in (".ipynb", ".md"):
                relative = relative.removesuffix(suffix)
            docname = relative if relative in env.all_docs else link_map.get(relative)
            if docname is None:
                continue
            node["refdomain"] = "doc"
            node["reftarget"] = docname
            node["reftargetid"] = anchor or None


def solutions_fragment(repo: Path = REPO) -> str:
    files = sorted((repo / "notebooks" / "solutions").glob("*.py"))
    if not files:
        return "This checkout holds no solutions.\n"
    return "\n".join(
        f"## `{path.name}`\n\n```{{literalinclude}} /notebooks/solutions/{path.name}\n:language: python\n```\n" for path in files
    )


# LaTeX size commands that docutils' converter does not know; the delimiters keep their normal size.
TEX_SIZES = re.compile(r"\\(?:big|Big|bigg|Bigg)[lrm]?(?![a-zA-Z])")
TEX_ALIASES = {r"\dots": r"\ldots"}


def tex_to_mathml(tex: str, block: bool) -> str:
    """MathML for a LaTeX formula, by docutils' own converter (raises ``MathError`` on unknown commands)."""
    from docutils.utils.math import latex2mathml, unichar2tex

    tex = TEX_SIZES.sub("", tex.translate(unichar2tex.uni2tex_table))
    for alias, command in TEX_ALIASES.items():
        tex = re.sub(re.escape(alias) + r"(?![a-zA-Z])", lambda _: command, tex)
    return latex2mathml.tex2mathml(tex, as_block=block)


def _render_math(translator, node, block: bool) -> None:
    from docutils.utils.math import MathError

    tex = node.astext().strip()
    try:
        markup = tex_to_mathml(tex, block)
    except MathError as error:
        logger.warning(f"formula shown as LaTeX, not converted to MathML ({error}): {tex}", location=node,
                       type="gcalib", subtype="math")
        tag = "pre" if block else "code"
        markup = f'<{tag} class="math-tex">{translator.encode(tex)}</{tag}>'
    if block:
        number = f'<span class="eqno">({node["number"]})</span>' if node.get("number") else ""
        markup = f'<div class="math-display">{number}{markup}</div>\n'
    translator.body.append(markup)
    raise nodes.SkipNode


def visit_math(translator, node) -> None:
    _render_math(translator, node, block=False)


def visit_math_block(translator, node) -> None:
    _render_math(translator, node, block=True)


def drop_type_docstrings(app, what, name, obj, options, lines) -> None:
    """A constant without a ``#:`` comment would show its type's docstring (``dict``'s for a dict): drop it."""
    if what in ("data", "attribute") and not inspect.isclass(obj) and not callable(obj):
        type_doc = inspect.cleandoc(type(obj).__doc__ or "")
        if type_doc and "\n".join(lines).strip() == type_doc.strip():
            lines.clear()


def setup(app):
    app.add_config_value("gcalib_link_map", {}, "env", types=[dict])
    app.add_post_transform(RepositoryLinks)
    app.connect("builder-inited", write_generated)
    app.connect("doctree-read", static_widgets, priority=400)  # before Sphinx's image collector
    app.connect("autodoc-process-docstring", drop_type_docstrings)
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_math_block, None))
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
