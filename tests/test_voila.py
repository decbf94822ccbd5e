"""The chapter-5 dashboard runs as a stand-alone web app: ``voila notebooks/05_conclusions.ipynb``.

Starts voila on a free loopback port, fetches the page (voila executes the notebook for the
request) and checks that the app rendered: the chapter's text, the dashboard widget, and no
traceback or error output.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _servers import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_conclusions.ipynb"


def _wait_for(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"voila did not listen on port {port} within {timeout} s")


@pytest.mark.skipif(shutil.which("voila", path=str(Path(sys.executable).parent)) is None
                    and shutil.which("voila") is None, reason="voila is not installed")
def test_dashboard_runs_as_a_voila_app(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", "--VoilaConfiguration.file_allowlist=['.*']",
           "--VoilaConfiguration.show_tracebacks=True"]
    log = (tmp_path / "voila.log").open("w")
    server = subprocess.Popen(cmd, cwd=ROOT / "notebooks", stdout=log, stderr=subprocess.STDOUT,
                              env=env)
    try:
        _wait_for(port, 120)
        with urllib.request.urlopen(url, timeout=600) as response:
            page = response.read().decode("utf-8", errors="replace")
    finally:
        stop(server)
        log.close()
    text = (tmp_path / "voila.log").read_text()
    assert "Chapter 5" in page, page[:2000]
    assert "application/vnd.jupyter.widget-view+json" in page  # the dashboard widget
    for marker in ("Traceback", "ClaimError", "jp-RenderedText\" data-mime-type=\"application/"
                   "vnd.jupyter.stderr"):
        assert marker not in page, f"{marker} in the rendered app"
    assert "Traceback" not in text, text[-3000:]
