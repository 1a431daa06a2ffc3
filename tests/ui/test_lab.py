"""Notebooks 01, 03 and 07 in JupyterLab, driven through the UI as a participant would.

For each notebook: open it, Run > Run All Cells from the menu bar, wait until every code cell has run and
the kernel is idle, check that no cell raised; then, for every explorer (a widget output holding an
``ipywidgets.Image``), change its first enabled control and check that the PNG shown changes. The browser
console must hold no widget error. Screenshots go to docs/_build/ui/.

Every notebook of the series, opened and left untouched until its kernel is idle, must not be marked as
modified: JupyterLab marks a notebook dirty when it has to complete the file (cell ids, metadata).
"""
from __future__ import annotations

import base64
import re
import time

import pytest

from ui_support import REPO, severe_messages

NOTEBOOKS = ["01_entropic_ot_and_sinkhorn", "03_the_gca_loss_family", "07_custom_target_plans"]
SERIES = sorted(path.stem for path in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_TIMEOUT = 900  # seconds for Run All Cells (07 takes about a minute on an idle 2-core CPU)
REDRAW_TIMEOUT = 120
WIDGET_ERRORS = re.compile(r"widget|@jupyter-widgets|ipywidgets|comm|model", re.IGNORECASE)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The bytes behind an <img>: ipywidgets shows an Image's value through a blob: URL.
IMAGE_BYTES = """
const img = arguments[0], done = arguments[arguments.length - 1];
fetch(img.src).then(response => response.arrayBuffer()).then(buffer => {
  const bytes = new Uint8Array(buffer);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) { text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)); }
  done(btoa(text));
}).catch(error => done('ERROR ' + error));
"""

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
CELL_STATES = """
return Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')).map(cell => {
  const prompt = cell.querySelector('.jp-InputArea-prompt');
  const source = cell.querySelector('.jp-InputArea-editor');
  return {prompt: prompt ? prompt.textContent.trim() : '', empty: !source || source.textContent.trim() === ''};
});
"""


def _wait(condition, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _image_bytes(browser, image) -> bytes:
    data = browser.execute_async_script(IMAGE_BYTES, image)
    assert not data.startswith("ERROR"), f"could not read the explorer's image: {data}"
    return base64.b64decode(data)


def _kernels_idle(lab) -> bool:
    kernels = lab.kernels()
    return bool(kernels) and all(kernel["execution_state"] == "idle" for kernel in kernels)


def _run_all_cells(browser, lab) -> list[dict]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    run_menu = wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//li[contains(@class, 'lm-MenuBar-item')][.//div[normalize-space()='Run']]")))
    run_menu.click()
    # "Run All Cells" is the command runmenu:run-all in JupyterLab 4's Run menu (notebook:run-all-cells elsewhere)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ", ".join(
        f".lm-Menu li.lm-Menu-item[data-command='{command}']" for command in ("runmenu:run-all", "notebook:run-all-cells"))))).click()

    def finished():
        cells = [cell for cell in browser.execute_script(CELL_STATES) if not cell["empty"]]
        done = cells and all(re.fullmatch(r"\[\d+\]:", cell["prompt"]) for cell in cells)
        return cells if done and _kernels_idle(lab) else None

    _wait(lambda: any(cell["prompt"] == "[*]:" for cell in browser.execute_script(CELL_STATES)) or finished(), 120,
          "the first cell to start running")
    return _wait(finished, RUN_TIMEOUT, "every code cell to run and the kernel to be idle", interval=2)


def _first_enabled_control(output):
    """Change the explorer's first enabled control; returns its description."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    for control in output.find_elements(By.CSS_SELECTOR, ".widget-slider, .widget-dropdown, .widget-checkbox, .widget-toggle-buttons"):
        label = control.find_elements(By.CSS_SELECTOR, ".widget-label")
        name = label[0].text if label else control.get_attribute("class")
        classes = control.get_attribute("class")
        if "widget-dropdown" in classes:
            select = control.find_element(By.TAG_NAME, "select")
            if not select.is_enabled() or len(select.find_elements(By.TAG_NAME, "option")) < 2:
                continue
            menu = Select(select)
            current = select.get_attribute("value")
            other = next(option for option in menu.options if option.get_attribute("value") != current)
            menu.select_by_value(other.get_attribute("value"))
            return f"dropdown '{name}' -> {other.text}"
        if "widget-checkbox" in classes:
            box = control.find_element(By.CSS_SELECTOR, "input[type=checkbox]")
            if not box.is_enabled():
                continue
            box.click()
            return f"checkbox '{name}'"
        if "widget-toggle-buttons" in classes:
            buttons = [b for b in control.find_elements(By.TAG_NAME, "button") if b.is_enabled() and "mod-active" not in b.get_attribute("class")]
            if not buttons:
                continue
            buttons[0].click()
            return f"toggle '{name}' -> {buttons[0].text}"
        handles = control.find_elements(By.CSS_SELECTOR, ".noUi-handle")
        if not handles or "mod-disabled" in classes or control.find_elements(By.CSS_SELECTOR, "[disabled]"):
            continue
        handles[0].send_keys(Keys.ARROW_RIGHT)
        return f"slider '{name}' one step right"
    return None


def _open(browser, lab, stem):
    """Open one notebook in a fresh workspace with no other session; returns its panel once the kernel is idle."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    lab.shut_down_sessions()
    browser.get(lab.url(f"lab/workspaces/{stem}/tree/notebooks/{stem}.ipynb") + "&reset")
    panel = WebDriverWait(browser, 120).until(ec.presence_of_element_located((By.CSS_SELECTOR, PANEL)))
    WebDriverWait(browser, 120).until(lambda driver: panel.find_elements(By.CSS_SELECTOR, ".jp-Cell"))
    _wait(lambda: _kernels_idle(lab), 120, "the notebook's kernel to start")
    return panel


@pytest.mark.parametrize("stem", SERIES)
def test_an_untouched_notebook_is_not_marked_modified(browser, lab, stem):
    from selenium.webdriver.common.by import By

    _open(browser, lab, stem)
    time.sleep(3)  # the kernel's language_info reaches the notebook's metadata after the kernel is idle
    tabs = browser.find_elements(By.CSS_SELECTOR, ".lm-DockPanel-tabBar .lm-TabBar-tab")
    tab = next((t for t in tabs if t.text.strip().startswith(stem)), None)
    assert tab is not None, f"no tab for {stem}.ipynb among {[t.text for t in tabs]}"
    assert "jp-mod-dirty" not in tab.get_attribute("class"), \
        f"JupyterLab marks the untouched {stem}.ipynb as modified: complete its metadata (tests/notebook/test_series_files.py)"
    lab.shut_down_sessions()


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_run_all_and_move_each_explorer(browser, lab, screenshots, stem):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    panel = _open(browser, lab, stem)
    severe_messages(browser)

    cells = _run_all_cells(browser, lab)
    browser.save_screenshot(str(screenshots / f"lab-{stem}.png"))
    errors = [o.text[:400] for o in panel.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
              if "Traceback (most recent call last)" in o.text or "Error displaying widget" in o.text]
    assert not errors, f"{stem}: cells failed under Run All Cells:\n" + "\n---\n".join(errors)

    outputs = [o for o in panel.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
               if o.find_elements(By.CSS_SELECTOR, ".jupyter-widgets img.widget-image")]
    assert outputs, f"{stem}: no explorer (an ipywidgets Image in a widget output) after running {len(cells)} cells"
    for index, output in enumerate(outputs, 1):
        browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", output)
        image = output.find_element(By.CSS_SELECTOR, "img.widget-image")
        _wait(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image),
              60, f"explorer {index}'s first figure")
        before_src, before = image.get_attribute("src"), _image_bytes(browser, image)
        assert before.startswith(PNG_SIGNATURE), f"{stem}, explorer {index}: the image is not a PNG"
        browser.save_screenshot(str(screenshots / f"lab-{stem}-explorer{index}-before.png"))

        changed = _first_enabled_control(output)
        assert changed, f"{stem}, explorer {index}: no enabled slider, dropdown, checkbox or toggle to change"
        image = _wait(lambda: next((img for img in output.find_elements(By.CSS_SELECTOR, "img.widget-image")
                                    if img.get_attribute("src") != before_src), None),
                      REDRAW_TIMEOUT, f"explorer {index} to show a new figure after the {changed} change")
        _wait(lambda: _kernels_idle(lab), REDRAW_TIMEOUT, "the kernel to be idle after the redraw")
        after = _image_bytes(browser, image)
        assert after.startswith(PNG_SIGNATURE), f"{stem}, explorer {index}: the new image is not a PNG"
        assert after != before, f"{stem}, explorer {index}: the {changed} change left the figure's PNG unchanged"
        print(f"{stem}, explorer {index}: {changed} redrew the figure ({len(before)} -> {len(after)} PNG bytes)")
        browser.save_screenshot(str(screenshots / f"lab-{stem}-explorer{index}-after.png"))

    console = severe_messages(browser)
    widget_errors = [message for message in console if WIDGET_ERRORS.search(message)]
    assert not widget_errors, f"{stem}: widget errors in the browser console:\n" + "\n".join(widget_errors)
    if console:
        print(f"{stem}: other SEVERE console entries (not widget errors):\n" + "\n".join(console))
    lab.shut_down_sessions()
