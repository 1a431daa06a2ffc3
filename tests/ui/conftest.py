"""Fixtures of the browser tests (``make test-ui``): headless Chromium through Selenium, a local HTTP server
for the built site, and a JupyterLab server on a temporary copy of the notebooks.

These tests are not part of ``make test``. Run directly (``pytest tests/ui``) they skip, with the reason, when
Selenium, Chromium or chromedriver is missing; ``make test-ui`` installs all three.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from ui_support import REPO, SCREENSHOTS, SITE, Lab, chromium_paths, free_port


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium that records the browser console (``browser.get_log("browser")``)."""
    binary, driver_path = chromium_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    not_found: list[str]

    def log_message(self, format, *args) -> None:
        pass

    def send_error(self, code, message=None, explain=None) -> None:
        if code == 404:
            self.not_found.append(self.path)
        super().send_error(code, message, explain)


@pytest.fixture(scope="session")
def site():
    """The built site served on 127.0.0.1; ``site.url`` is its root, ``site.not_found`` every 404 so far."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site at {SITE}: run `make docs` first (make test-ui builds it when it is missing)")
    not_found: list[str] = []
    handler = type("Handler", (_SiteHandler,), {"not_found": not_found})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/"
    server.not_found = not_found
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 (random port, a token, no browser) serving a temporary copy of notebooks/,
    so that nothing the tests run or change is saved into the repository's notebooks."""
    chromium_paths()
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("_executed", ".ipynb_checkpoints"))
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)  # the clutter_digits cache, as ../data
    # No news or update pop-ups, and every cell kept in the page (no windowing) so that all outputs can be read.
    for plugin, values in {"apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                           "notebook-extension/tracker": {"windowingMode": "none"}}.items():
        path = root / "lab-settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    log = root / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={root / 'lab-settings'}", f"--LabApp.workspaces_dir={root / 'workspaces'}",
        "--ServerApp.port_retries=0",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI and containers run as root
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "GCALIB_DATA": str(REPO / "data")}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Lab(port, token, root, process, log)
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            server.api("status")
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"JupyterLab did not answer on port {port} within 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
