"""Helpers for the tests that start a local server (voila, JupyterLab)."""

from __future__ import annotations

import socket
import subprocess


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
