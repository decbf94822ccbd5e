"""The dashboard web app: ``python apps/dashboard_server.py`` (voila, set up for a room).

One voila server for the module, started the way the README says (a pre-started kernel, idle
kernels culled even with their page open), with the culling timeout shortened to seconds.

* ``test_page_shows_only_the_dashboard``: the served page holds the dashboard widget and its
  title, and nothing of chapter 5 (no exercise, no verdict, no traceback, no stderr).
* ``test_dashboard_in_the_browser`` (marker ``browser``): in headless Chromium with every
  request off the machine blocked, the first picture appears (the wait is printed), no
  "Error displaying widget" text and no page error, moving the level slider redraws the
  picture; each visitor's kernel memory is printed; after the idle timeout the first visit's
  kernel is gone and a second visit gets a working dashboard on another kernel.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from _servers import free_port, playwright, stop

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "dashboard.ipynb"
SERVER = ROOT / "apps" / "dashboard_server.py"
CULL_IDLE_TIMEOUT, CULL_INTERVAL = 12, 2  # seconds, for the test (dashboard_server.py: 600 and 60)
CHAPTER_MARKERS = ("Exercise", "not attempted", "correct.", "✓", "Traceback", "ClaimError",
                   'data-mime-type="application/vnd.jupyter.stderr"')
KERNEL_ID = re.compile(r"kernel-([0-9a-f-]{36})\.json")


def _voila_installed() -> bool:
    return (shutil.which("voila", path=str(Path(sys.executable).parent)) is not None
            or shutil.which("voila") is not None)


class Voila:
    def __init__(self, process: subprocess.Popen, port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log
        self.url = f"http://127.0.0.1:{port}/"

    def kernels(self) -> dict[str, psutil.Process]:
        """The server's running kernels: kernel id -> process."""
        found = {}
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                match = KERNEL_ID.search(" ".join(child.cmdline()))
            except psutil.Error:
                continue
            if match:
                found[match.group(1)] = child
        return found

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@pytest.fixture(scope="module")
def voila(tmp_path_factory):
    if not _voila_installed():
        pytest.skip("voila is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    cmd = [sys.executable, str(SERVER), f"--port={port}", "--Voila.ip=127.0.0.1",
           f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_TIMEOUT}",
           f"--MappingKernelManager.cull_interval={CULL_INTERVAL}"]
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   env=env)
    server = Voila(process, port, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"voila exited ({process.returncode}):\n{server.log_tail()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"voila did not listen within 120 s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        stop(process)


def _wait_for_pool(voila: Voila, timeout: float = 180) -> None:
    """Wait until the pre-started kernel exists (dashboard_server.py: preheat_kernel)."""
    deadline = time.monotonic() + timeout
    while not voila.kernels():
        if time.monotonic() > deadline:
            pytest.fail(f"no pre-started kernel within {timeout} s:\n{voila.log_tail()}")
        time.sleep(0.5)


def test_page_shows_only_the_dashboard(voila):
    _wait_for_pool(voila)
    with urllib.request.urlopen(voila.url, timeout=600) as response:
        page = response.read().decode("utf-8", errors="replace")
    assert "one image, every method" in page, page[:2000]
    assert page.count("application/vnd.jupyter.widget-view+json") == 1  # the dashboard only
    found = [m for m in CHAPTER_MARKERS if m in page]
    assert not found, f"{found} in the app's page"
    assert "Traceback" not in voila.log_tail(20_000), voila.log_tail()


@pytest.mark.browser
def test_dashboard_in_the_browser(voila, record_property):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_decks import CHROMIUM_ARGS, _chromium, _no_browser

    executable = _chromium()
    if executable is None:
        _no_browser("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    try:
        manager = playwright()
    except ImportError as exc:
        _no_browser(f"playwright is not installed ({exc})")
    _wait_for_pool(voila)
    # a visit of the test page above may have left an idle kernel; let the culler take it
    time.sleep(CULL_IDLE_TIMEOUT + 2 * CULL_INTERVAL)

    # one Playwright driver per test process (tests/_servers.py); this test's own Chromium
    with contextlib.closing(manager.chromium.launch(executable_path=executable, headless=True,
                                                    args=CHROMIUM_ARGS)) as browser:
        blocked, errors = [], []

        def visit():
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
                (voila.url, "data:", "blob:")) else (blocked.append(r.request.url), r.abort()))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            t0 = time.perf_counter()
            page.goto(voila.url, timeout=300_000)
            picture = page.locator(".widget-vbox img.widget-image").first
            try:
                picture.wait_for(state="visible", timeout=180_000)
            except Exception:
                shot = voila.log.with_name("voila-failure.png")
                page.screenshot(path=str(shot))
                pytest.fail(f"no dashboard picture within 180 s (screenshot {shot}); "
                            f"kernels {list(voila.kernels())}; page errors {errors[-5:]}\n"
                            f"{voila.log_tail()}", pytrace=False)
            page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                   arg=picture.element_handle(), timeout=60_000)
            wait = time.perf_counter() - t0
            kernel = KERNEL_ID.search(f"kernel-{_page_kernel(page)}.json").group(1)
            return page, picture, wait, kernel

        page1, picture, wait1, kernel1 = visit()
        text = page1.inner_text("body")
        assert "one image, every method" in text
        assert "Error displaying widget" not in text and "model not found" not in text, text
        assert not [m for m in CHAPTER_MARKERS if m in page1.content()]
        assert page1.locator(".widget-vbox .widget-dropdown select").count() == 4
        slider = page1.locator(".widget-slider .noUi-handle").first
        old = picture.get_attribute("src")
        slider.focus()
        page1.keyboard.press("ArrowRight")
        page1.wait_for_function("([img, old]) => img.getAttribute('src') !== old",
                                arg=[picture.element_handle(), old], timeout=60_000)

        kernels = voila.kernels()
        assert kernel1 in kernels, (kernel1, list(kernels))
        memory = {k: (p.memory_info().rss / 2**20, p.memory_full_info().uss / 2**20)
                  for k, p in kernels.items()}
        rss, uss = memory[kernel1]
        print(f"\nvoila: first picture after {wait1:.1f} s; visitor's kernel RSS {rss:.0f} MB, "
              f"USS {uss:.0f} MB; {len(kernels)} kernels (one pre-started for the next visitor)")
        record_property("first_picture_seconds", round(wait1, 1))
        record_property("kernel_rss_mb", round(rss))
        record_property("kernel_uss_mb", round(uss))

        # the page stays open and idle: after the timeout its kernel is culled
        pid = kernels[kernel1].pid
        deadline = time.monotonic() + CULL_IDLE_TIMEOUT + 10 * CULL_INTERVAL + 30
        while psutil.pid_exists(pid) and time.monotonic() < deadline:
            time.sleep(1)
        assert not psutil.pid_exists(pid), "the idle visitor's kernel was not culled"
        page1.close()

        page2, _, wait2, kernel2 = visit()
        assert kernel2 != kernel1 and kernel1 not in voila.kernels()
        assert "Error displaying widget" not in page2.inner_text("body")
        print(f"voila: second visit, first picture after {wait2:.1f} s")
        page2.close()
        browser.close()
    # voila's page template links Font Awesome's style sheets from a CDN; offline they fail
    # and nothing on the dashboard needs them (no icons). Everything else is served locally.
    assert [u for u in blocked if "fontawesome" not in u] == [], f"network requests: {blocked}"
    bad = [e for e in errors if "Failed to load resource: net::ERR_FAILED" not in e]
    assert not bad, f"errors in the page: {bad[:5]}"


def _page_kernel(page) -> str:
    """The kernel id the voila page is connected to (voila writes it into the page)."""
    match = re.search(r'"kernelId"\s*:\s*"([0-9a-f-]{36})"', page.content())
    assert match, "no kernelId in the voila page"
    return match.group(1)
