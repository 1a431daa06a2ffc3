"""Headless execution of widget notebooks: no cell waits for a timeout (the full check: make test-headless)."""
import base64
import statistics
import sys
import time

import nbformat
import pytest

import headless

RUNS = 3
LIMIT_S = 180.0


def _runs(source, target):
    times = [headless.timed_run(headless.nbclient_command(source, target), LIMIT_S) for _ in range(RUNS)]
    finished = [t for t in times if t is not None]
    return times, statistics.median(finished) if finished else LIMIT_S


def _widget_models(notebook):
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return list(state.values())


def test_widget_notebooks_are_found_by_their_explorer_calls():
    names = [path.name[:2] for path in headless.widget_notebooks()]
    assert names == ["01", "02", "03", "07"]


def test_verdict_flags_runs_at_the_limit_and_slower_than_three_medians():
    assert headless.verdict([10.0, 29.0, None], 10.0, 60.0) == ["run 3 hit the 60 s limit"]
    assert headless.verdict([10.0, 31.0], 10.0, 60.0) == ["run 2 took 31.0 s > 3 × median 10.0 s"]


def test_timed_run_kills_a_run_past_the_limit_and_reports_failures():
    started = time.monotonic()
    assert headless.timed_run([sys.executable, "-c", "import time; time.sleep(60)"], 1.0) is None
    assert time.monotonic() - started < 10
    assert headless.timed_run([sys.executable, "-c", "pass"], 30.0) > 0
    with pytest.raises(RuntimeError, match="boom"):
        headless.timed_run([sys.executable, "-c", "raise SystemExit('boom')"], 30.0)


@pytest.mark.slow
def test_explorer_fixture_runs_headless_and_keeps_each_image_in_the_widget_state(tmp_path):
    source, target = tmp_path / "explorers.ipynb", tmp_path / "executed.ipynb"
    nbformat.write(headless.fixture_notebook(), source)
    times, median = _runs(source, target)
    assert headless.verdict(times, median, LIMIT_S) == []
    executed = nbformat.read(target, as_version=4)
    assert executed.cells[-1].outputs[0].text == "done\n"
    models = _widget_models(executed)
    images = [m for m in models if m["model_name"] == "ImageModel"]
    assert len(images) == 4 and not [m for m in models if m["model_name"] == "OutputModel"]
    for image in images:
        (buffer,) = image["buffers"]
        assert buffer["path"] == ["value"] and image["state"]["format"] == "png"
        assert base64.b64decode(buffer["data"]).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.slow
def test_a_widget_notebook_runs_headless_in_about_its_usual_time(tmp_path):
    source = headless.widget_notebooks()[0]
    times, median = _runs(source, tmp_path / source.name)
    assert headless.verdict(times, median, LIMIT_S) == []
