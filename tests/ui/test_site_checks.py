"""The site's own checks (docs/check_site.py, docs/_ext/gcalib_docs.py) on small made-up inputs: they must
catch what they are there to catch. No browser needed."""
from __future__ import annotations

import json
import sys

import pytest

from ui_support import REPO

pytest.importorskip("sphinx", reason="the docs extra is not installed: pip install -e '.[docs]' (make test-ui does)")
sys.path.insert(0, str(REPO / "docs"))
sys.path.insert(0, str(REPO / "docs" / "_ext"))

import check_site  # noqa: E402
import gcalib_docs  # noqa: E402


def _site(tmp_path, pages: dict[str, str]):
    for name, body in pages.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<html><body>{body}</body></html>")
    return tmp_path


def test_check_site_accepts_resolving_links(tmp_path):
    site = _site(tmp_path, {
        "index.html": '<a href="notebooks/a.html#fig">a</a> <a href="#top">top</a><h1 id="top">t</h1>'
                      '<img src="_static/x.png"> <a href="https://example.org/">out</a>',
        "notebooks/a.html": '<p id="fig">f</p><a href="../index.html">back</a>',
        "_static/x.png": "",
    })
    assert check_site.broken_links(site) == []


def test_check_site_reports_a_missing_page_and_a_missing_anchor(tmp_path):
    site = _site(tmp_path, {
        "index.html": '<a href="notebooks/missing.html">m</a> <a href="other.html#nowhere">o</a> <a href="#gone">g</a>',
        "other.html": '<p id="here">h</p>',
    })
    problems = check_site.broken_links(site)
    assert any("notebooks/missing.html (no such file)" in problem for problem in problems), problems
    assert any("other.html#nowhere (no id 'nowhere'" in problem for problem in problems), problems
    assert any("#gone (no id 'gone'" in problem for problem in problems), problems
    assert len(problems) == 3


def test_check_site_leaves_markup_errors_to_the_warnings(tmp_path):
    site = _site(tmp_path, {"index.html": '<a class="reference internal" href="#id1"><span class="problematic" id="id2">|R|</span></a>'})
    assert check_site.broken_links(site) == []


def test_check_site_fails_on_reference_warnings_only(tmp_path, capsys):
    site = _site(tmp_path, {"index.html": "<p>ok</p>"})
    warnings = tmp_path / "warnings.txt"
    warnings.write_text("x.py:docstring of f:1: ERROR: Unknown target name: \"a\". [docutils]\n")
    assert check_site.main([str(site), str(warnings)]) == 0
    warnings.write_text("index.md:3: WARNING: 'myst' cross-reference target not found: 'nowhere' [myst.xref_missing]\n")
    assert check_site.main([str(site), str(warnings)]) == 1
    assert "broken reference" in capsys.readouterr().out


def test_errors_section_is_cut_at_the_next_section():
    readme = "# T\n\n## Quick start\n\nrun\n\n## Common errors and their fixes\n\n| a | b |\n\n## Later\n\nno\n"
    page = gcalib_docs.errors_section(readme)
    assert page.startswith("# Common errors and their fixes\n")
    assert "| a | b |" in page and "Later" not in page and "Quick start" not in page


def test_errors_section_missing_is_an_error():
    with pytest.raises(RuntimeError, match="no '## Common errors"):
        gcalib_docs.errors_section("# T\n\n## Quick start\n")


def test_the_readme_has_the_error_table():
    page = gcalib_docs.errors_section((REPO / "README.md").read_text(encoding="utf-8"))
    assert page.count("\n|") >= 5


def test_results_fragment_reads_comparisons_and_benchmarks(tmp_path):
    runs = {"clean": {"infonce": [{"linear_acc": 0.4}, {"linear_acc": 0.5}], "random-init": [{"linear_acc": 0.1}]}}
    (tmp_path / "notebooks" / "results").mkdir(parents=True)
    (tmp_path / "notebooks" / "results" / "grid.json").write_text(
        json.dumps({"dataset": "toy", "seeds": [0, 1], "settings": {"clean": {}}, "runs": runs}))
    text = gcalib_docs.results_fragment(tmp_path)
    assert "| infonce | 2 | 0.450 ± 0.071 |" in text
    assert "| random-init | 1 | 0.100 |" in text
    assert "No `benchmarks/results/*.json` here" in text
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "losses.json").write_text(
        json.dumps({"machine": {"cpu_count": 2}, "rows": [{"loss": "infonce", "ms": 1.23456}]}))
    text = gcalib_docs.results_fragment(tmp_path)
    assert "### `benchmarks/results/losses.json`" in text and "| infonce | 1.235 |" in text
