"""Helpers for the tests that start a local server (voila, JupyterLab)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(server: subprocess.Popen) -> None:
    """Terminate a server process; kill it if it has not exited within 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


_PLAYWRIGHT = None


def playwright():
    """The test process's one Playwright driver (sync API), started on first use.

    Playwright's sync API cannot start a second driver while one runs in the same process
    ("using Playwright Sync API inside the asyncio loop"), so every browser fixture (JupyterLab,
    the decks, the voila app) launches its Chromium from this one; it stops when pytest exits.
    """
    global _PLAYWRIGHT
    if _PLAYWRIGHT is None:
        import atexit

        from playwright.sync_api import sync_playwright

        _PLAYWRIGHT = sync_playwright().start()
        atexit.register(_PLAYWRIGHT.stop)
    return _PLAYWRIGHT


# --------------------------------------------------------------- Chromium for the browser tests
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def in_ci() -> bool:
    """Whether the tests run under ``CI=true`` (``.ci/run``)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def no_browser(reason: str):
    """Locally a missing browser skips the test; under ``CI=true`` it is a failure."""
    if in_ci():
        pytest.fail(f"CI=true and no browser: {reason} (.ci/run installs Debian's chromium)",
                    pytrace=False)
    pytest.skip(reason)


def chromium() -> str | None:
    """Debian's Chromium (``CHROMIUM_PATH`` overrides); ``None`` when there is none."""
    path = os.environ.get("CHROMIUM_PATH")
    if path:
        return path if Path(path).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
