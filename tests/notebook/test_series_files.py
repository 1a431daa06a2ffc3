"""The committed notebooks as files: valid nbformat 4.5 with complete metadata, a papermill parameters cell,
committed outputs only where nbval compares them, and a closing list of references that notebooks/README.md also lists.

JupyterLab fills in what a notebook file lacks (cell ids, ``language_info``) when it opens it and then marks
the untouched notebook as modified; complete files avoid that.
"""
from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
LANGUAGE_INFO_KEYS = {"codemirror_mode", "file_extension", "mimetype", "name", "nbconvert_exporter",
                      "pygments_lexer", "version"}
# An entry of a references list: "- Authors (year). Title...".
REFERENCE = re.compile(r"^- (?P<authors>[^()\n]+?) \((?P<year>\d{4})\)\.", re.MULTILINE)


def _notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _references(text: str) -> set[tuple[str, str]]:
    return {(match["authors"].strip(), match["year"]) for match in REFERENCE.finditer(text)}


def test_the_series_has_seven_notebooks():
    assert [path.name[:2] for path in PATHS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_notebook_is_valid_nbformat_with_complete_metadata(path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) >= (4, 5), "cell ids need nbformat 4.5"
    ids = [cell.get("id") for cell in notebook.cells]
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs its own id"
    assert dict(notebook.metadata.kernelspec) == {"display_name": "Python 3 (ipykernel)", "language": "python",
                                                  "name": "python3"}
    missing = LANGUAGE_INFO_KEYS - set(notebook.metadata.language_info)
    assert not missing, f"language_info lacks {sorted(missing)}"


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_notebook_has_one_parameters_cell_with_a_full_switch(path):
    cells = _notebook(path)["cells"]
    tagged = [cell for cell in cells if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"
    assert re.search(r"^FULL = False\b", _source(tagged[0]), re.MULTILINE), "the one-line switch to the full recipe"


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_papermill_infers_every_parameter(path, caplog):
    """`papermill -p NAME value` sets any name of the parameters cell without an "unknown parameter" warning,
    and `papermill --help-notebook` lists them all: one single-line assignment per name, no '=' in comments."""
    papermill = pytest.importorskip("papermill")
    cell = next(c for c in _notebook(path)["cells"] if "parameters" in c["metadata"].get("tags", []))
    assigned = [target.id for node in ast.parse(_source(cell)).body if isinstance(node, ast.Assign)
                for target in ast.walk(node.targets[0]) if isinstance(target, ast.Name)]
    with caplog.at_level(logging.WARNING):
        inferred = papermill.inspect_notebook(str(path))
    assert not [n for n in assigned if n not in inferred], f"papermill cannot see {[n for n in assigned if n not in inferred]}"
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_papermill_injects_full_after_the_defaults(path, tmp_path):
    """`papermill notebook.ipynb out.ipynb -p FULL True` must override the default, not be overwritten by it."""
    papermill = pytest.importorskip("papermill")
    prepared = papermill.execute_notebook(str(path), str(tmp_path / "out.ipynb"), parameters={"FULL": True},
                                          prepare_only=True, progress_bar=False)
    tags = [cell.metadata.get("tags", []) for cell in prepared.cells]
    defaults = next((i for i, t in enumerate(tags) if "parameters" in t), None)
    assert defaults is not None, "no parameters cell: papermill injects at the top, where the defaults overwrite it"
    assert "injected-parameters" in tags[defaults + 1] and "FULL = True" in prepared.cells[defaults + 1].source


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_notebook_commits_only_the_text_outputs_that_nbval_compares(path):
    checked = 0
    for cell in _notebook(path)["cells"]:
        if cell["cell_type"] != "code":
            continue
        if _source(cell).startswith("# NBVAL_CHECK_OUTPUT"):
            checked += 1
            assert cell["outputs"] and all(output["output_type"] == "stream" for output in cell["outputs"]), \
                f"a checked cell keeps its expected printed output, nothing else: {_source(cell)[:80]}"
        else:
            assert cell["outputs"] == [] and cell["execution_count"] is None, _source(cell)[:80]
    assert checked >= 1, "at least one cell pins a fact with nbval"


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.stem)
def test_notebook_ends_with_references_that_the_series_readme_lists(path):
    cells = _notebook(path)["cells"]
    last = _source(cells[-1])
    assert last.startswith("## References"), "the last cell lists the references the notebook uses"
    cited = _references(last)
    assert cited, "no reference entries of the form '- Authors (year). Title.'"
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    missing = cited - _references(readme)
    assert not missing, f"not in notebooks/README.md's references: {sorted(missing)}"
    for authors, year in cited:
        assert re.search(rf"\b{path.name[:2]}\b", _readme_entry(readme, authors, year)), \
            f"notebooks/README.md's entry for {authors} ({year}) does not name notebook {path.name[:2]}"


def _readme_entry(readme: str, authors: str, year: str) -> str:
    """The README's whole entry for one reference, continuation lines included."""
    start = readme.index(f"- {authors} ({year})")
    end = readme.find("\n- ", start + 1)
    return readme[start:end if end != -1 else len(readme)]


def test_no_notebook_mentions_a_document_users_do_not_have():
    for path in PATHS:
        text = "\n".join(_source(cell) for cell in _notebook(path)["cells"])
        assert not re.search(r"DESIGN(\.md| ?§)", text), path.name
