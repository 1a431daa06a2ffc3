"""Helpers shared by the browser tests: paths, the browser console, free ports, the JupyterLab handle."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "docs" / "_build" / "html"
SCREENSHOTS = REPO / "docs" / "_build" / "ui"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium_paths() -> tuple[str, str]:
    """Paths of the Chromium binary and of chromedriver, or a skip naming what is missing."""
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[ui]' (make test-ui does)")
    browser = next((path for path in map(shutil.which, BROWSERS) if path), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(name for name, path in (("Chromium", browser), ("chromedriver", driver)) if path is None)
        pytest.skip(f"{missing} not found on PATH: apt-get install chromium chromium-driver (make test-ui does)")
    return browser, driver


def severe_messages(driver) -> list[str]:
    """The browser console's SEVERE entries since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A running JupyterLab server: ``url(path)`` adds the token; ``kernels()`` lists the kernels' states."""

    def __init__(self, port: int, token: str, root: Path, process: subprocess.Popen, log: Path) -> None:
        self.port, self.token, self.root, self.process, self.log = port, token, root, process, log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?token={self.token}"

    def api(self, path: str):
        with urllib.request.urlopen(self.url(f"api/{path}"), timeout=10) as response:
            return json.loads(response.read())

    def kernels(self) -> list[dict]:
        return self.api("kernels")

    def shut_down_sessions(self) -> None:
        """Stop every notebook session (and its kernel), as File > Shut Down All Kernels would."""
        for session in self.api("sessions"):
            request = urllib.request.Request(self.url(f"api/sessions/{session['id']}"), method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()
