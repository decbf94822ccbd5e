"""Real-browser tests (marker ``browser``): the chapters in JupyterLab, driven by headless Chromium.

One JupyterLab server per session (loopback port, random token, ``--ServerApp.root_dir`` = a
temporary *copy* of ``notebooks/``, its settings, data, runtime and workspace folders in the same
temporary folder so that nothing of the user's, and nothing of a previous run, is read or
written) and one headless Chromium (Debian's ``chromium``, driven by Playwright; never a
downloaded browser). Autosave is off and nothing is saved; even so the server only ever sees the
copy, so the shipped notebooks cannot change.

* ``test_shipped_chapter_shows_snapshot``: every chapter opened as shipped, before anything
  runs, shows a snapshot picture or the explorer's note where a widget was saved, never a raw
  ``VBox(...)`` and never "Error displaying widget".
* ``test_chapter_runs_and_explorer_redraws``: chapters 2 to 5 (a chapter not written yet is
  skipped): Run All Cells in the browser, every code cell ran in this kernel, no output shows an
  error, then the first explorer's first slider (else its first dropdown) is moved through the
  page and the explorer's picture, screenshotted before and after, must differ.

Screenshots go to a temporary folder (printed; always for the explorer before/after, and a
whole-page screenshot on failure). Without a browser the tests skip locally; under ``CI=true``
they fail instead. ``BROWSER_CHAPTER_TIMEOUT`` (seconds, default 600) bounds one chapter's run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from _servers import CHROMIUM_ARGS, free_port, playwright, stop
from _servers import chromium as _chromium
from _servers import no_browser as _no_browser

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = ["01_inference", "02_explainability", "03_uncertainty", "04_intervenability",
            "05_conclusions"]
RUN_CHAPTERS = CHAPTERS[1:]  # chapter 1 is only opened here (time budget); nbval runs it
CHAPTER_TIMEOUT = float(os.environ.get("BROWSER_CHAPTER_TIMEOUT", "600"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# JupyterLab user settings for the session: never write the notebook, render every cell (no
# windowing, so every output is in the page), never ask the internet for news or updates.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ERROR_LINE = re.compile(r"^\s*(Traceback|[A-Za-z_.]*(Error|Exception)\b)", re.MULTILINE)



def _notebook(chapter: str) -> Path:
    path = NOTEBOOKS / f"{chapter}.ipynb"
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} does not exist yet (chapter not written)")
    return path


# --------------------------------------------------------------------------------------------
# Session fixtures: one JupyterLab server, one browser
# --------------------------------------------------------------------------------------------


class Lab:
    def __init__(self, port: int, token: str, folder: Path, log: Path) -> None:
        self.port, self.token, self.folder, self.log = port, token, folder, log
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def url(self, notebook: str) -> str:
        # ?reset: a fresh workspace, so only this notebook is open (and only its kernel runs)
        return f"{self.base}/lab/tree/{notebook}?reset&token={self.token}"

    def shutdown_sessions(self) -> None:
        for session in self.api("/api/sessions"):
            with contextlib.suppress(OSError):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@pytest.fixture(scope="session")
def scratch():
    """The session's working folder (JupyterLab's folders, the browser profile), removed at the
    end. Not under pytest's ``tmp_path``: a concurrent pytest run may prune that while a
    server still uses it."""
    with tempfile.TemporaryDirectory(prefix="tutorial-browser-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def shots() -> Path:
    """The session's screenshot folder (kept): ``$BROWSER_SCREENSHOTS`` or a new temp folder."""
    folder = os.environ.get("BROWSER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    folder = Path(folder or tempfile.mkdtemp(prefix="tutorial-browser-screenshots-"))
    print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture(scope="session")
def lab(scratch):
    """JupyterLab on a free loopback port with a random token, serving a copy of ``notebooks/``."""
    folder = scratch / "jupyterlab"
    served = scratch / "notebooks"  # a copy: the shipped notebooks are never opened for writing
    shutil.copytree(NOTEBOOKS, served, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = folder / "settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(folder / "config"),
           "JUPYTER_DATA_DIR": str(folder / "data"),  # fresh notebook-trust database too
           "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
           "IPYTHONDIR": str(folder / "ipython"),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    env.pop("JUPYTER_PATH", None)
    port, token = free_port(), secrets.token_hex(24)
    log = folder / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={served}", "--allow-root",
           "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands
           "--LabApp.extension_manager=readonly",   # no PyPI queries from the server
           f"--FileCheckpoints.checkpoint_dir={folder / 'checkpoints'}"]
    with log.open("w") as out:
        server = subprocess.Popen(cmd, cwd=served, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    server_lab = Lab(port, token, folder, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}):\n{server_lab.log_tail()}")
            try:
                server_lab.api("/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on port {port} within 120 s:\n"
                                f"{server_lab.log_tail()}")
                time.sleep(0.5)
        yield server_lab
    finally:
        stop(server)


@pytest.fixture(scope="session")
def browser(scratch):
    """Debian's headless Chromium (no browser download), with a fresh profile folder."""
    executable = _chromium()
    if executable is None:
        _no_browser("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    try:
        manager = playwright()
    except ImportError as exc:
        _no_browser(f"playwright is not installed ({exc}); pip install -e '.[dev]'")
    try:
        context = manager.chromium.launch_persistent_context(
            str(scratch / "chromium-profile"), executable_path=executable,
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
    except Exception as exc:  # any launch failure: no browser
        _no_browser(f"{executable} could not be started: {exc}")
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def notebook_page(browser, lab, shots, request):
    """``open(chapter)`` → a page with that notebook open in JupyterLab and its kernel idle.

    The page and the notebook's kernel are closed afterwards; on failure a screenshot of the
    page is saved to the session's screenshot folder.
    """
    failed_before = request.session.testsfailed
    pages, console = [], []

    def open_(chapter: str):
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}")
                if m.type == "error" else None)
        pages.append(page)
        page.goto(lab.url(f"{chapter}.ipynb"))
        page.wait_for_function(_JS_PANEL_READY, arg=f"{chapter}.ipynb", polling=250)
        _wait_idle(page, 120)
        return page

    yield open_
    failed = request.session.testsfailed > failed_before  # the call's report is already in
    for i, page in enumerate(pages):
        if failed:
            path = shots / f"{request.node.name}-failure-{i}.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(path))
                print(f"failure screenshot: {path}")
        with contextlib.suppress(Exception):
            page.close()
    with contextlib.suppress(Exception):
        lab.shutdown_sessions()
    if failed:
        print("browser console errors:\n" + "\n".join(console[-20:]))
        print(f"JupyterLab log ({lab.log}):\n{lab.log_tail(2000)}")


# --------------------------------------------------------------------------------------------
# JavaScript run in the page (JupyterLab 4 exposes its application as window.jupyterapp)
# --------------------------------------------------------------------------------------------

_JS_PANEL = """(name) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === name && w.content && w.sessionContext) return w;
  }
  return null;
}"""
_JS_PANEL_READY = f"""(name) => {{
  const panel = ({_JS_PANEL})(name);
  return !!(panel && panel.context.isReady && panel.content.widgets.length);
}}"""
_JS_KERNEL_STATUS = """() => {
  const app = window.jupyterapp, panel = app.shell.currentWidget;
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return kernel ? kernel.status : 'none';
}"""
# Every cell: its type, source emptiness, execution count and the text of its outputs.
_JS_CELLS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.map((cell, index) => {
    const outputs = [...cell.node.querySelectorAll('.jp-OutputArea-output')];
    return {
      index, type: cell.model.type,
      empty: cell.model.sharedModel.getSource().trim() === '',
      count: cell.model.type === 'code' ? cell.model.executionCount : null,
      outputs: outputs.map(o => ({mime: o.getAttribute('data-mime-type') || '',
                                  text: o.innerText || '',
                                  rendered_text: o.classList.contains('jp-RenderedText'),
                                  images: o.querySelectorAll('img').length})),
    };
  });
}"""
_JS_RUNNING = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .map((cell, index) => ({index, cell}))
  .filter(({cell}) => cell.model.type === 'code' && cell.model.executionState === 'running')
  .map(({index, cell}) => `cell ${index}: ${cell.model.sharedModel.getSource().slice(0, 120)}`)
"""
_JS_RUN_ALL = """() => {
  const app = window.jupyterapp;
  app.shell.activateById(app.shell.currentWidget.id);
  window.__runAll = undefined;
  app.commands.execute('notebook:run-all-cells').then(
    ok => { window.__runAll = {ok: ok}; }, e => { window.__runAll = {error: String(e)}; });
}"""
_JS_KERNEL_PREFIX = """async () => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  let out = '';
  const future = kernel.requestExecute({code: 'import sys; print(sys.prefix)', silent: false,
                                        store_history: false});
  future.onIOPub = msg => { if (msg.header.msg_type === 'stream') out += msg.content.text; };
  await future.done;
  return out.trim();
}"""
# Widget callbacks run on comm messages, not on a cell's execute request: their tracebacks go to
# the kernel's iopub with a comm message as parent, and no cell shows them. Collect them.
_JS_WATCH_CALLBACKS = """() => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  window.__callbackErrors = [];
  kernel.iopubMessage.connect((_, msg) => {
    const parent = (msg.parent_header || {}).msg_type;
    if (parent === 'execute_request') return;
    const type = msg.header.msg_type;
    if (type === 'stream' && msg.content.name === 'stderr') {
      window.__callbackErrors.push(msg.content.text);
    } else if (type === 'error') {
      window.__callbackErrors.push(msg.content.traceback.join('\\n'));
    }
  });
}"""
# Marks the first explorer (a widget VBox holding a picture) and its control to move.
_JS_MARK_EXPLORER = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  for (const cell of panel.content.widgets) {
    for (const img of cell.node.querySelectorAll('.jp-OutputArea-output img.widget-image')) {
      const box = img.closest('.widget-vbox');
      if (!box) continue;
      const handle = box.querySelector('.widget-slider .noUi-handle');
      const select = box.querySelector('.widget-dropdown select');
      if (!handle && !select) continue;
      box.setAttribute('data-browser-test', 'explorer');
      img.setAttribute('data-browser-test', 'picture');
      const control = handle ? handle.closest('.widget-slider')
                             : select.closest('.widget-dropdown');
      control.setAttribute('data-browser-test', 'control');
      const label = control.querySelector('.widget-label');
      return {cell: panel.content.widgets.indexOf(cell), kind: handle ? 'slider' : 'dropdown',
              label: label ? label.innerText : ''};
    }
  }
  return null;
}"""


def _wait_idle(page, timeout: float) -> None:
    """Wait until the notebook's kernel is connected and idle."""
    page.wait_for_function(f"() => ({_JS_KERNEL_STATUS})() === 'idle'", timeout=timeout * 1000,
                           polling=500)


def _errors(cells) -> list[str]:
    """Error outputs: a traceback or an ``...Error``/``...Exception`` line on stderr, a
    traceback in any text output, or a widget that failed to display."""
    found = []
    for cell in cells:
        for out in cell["outputs"]:
            text = out["text"]
            bad = ("Error displaying widget" in text
                   or (out["mime"] == "application/vnd.jupyter.stderr"
                       and ERROR_LINE.search(text))
                   or (out["rendered_text"] and "Traceback" in text))
            if bad:
                found.append(f"cell {cell['index']}: {text[:1500]}")
    return found


def _pixels_changed(before: bytes, after: bytes) -> float:
    """The share of pixels that differ between two screenshots (1.0 if the sizes differ)."""
    from PIL import Image, ImageChops

    a = Image.open(io.BytesIO(before)).convert("RGB")
    b = Image.open(io.BytesIO(after)).convert("RGB")
    if a.size != b.size:
        return 1.0
    diff = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 8 else 0)
    return diff.histogram()[255] / (a.size[0] * a.size[1])


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_shipped_chapter_shows_snapshot(chapter, notebook_page, shots):
    """Opened as shipped (nothing run, kernel idle): a picture or the note where an explorer
    was saved; no raw ``VBox(`` and no "Error displaying widget" anywhere."""
    path = _notebook(chapter)
    saved = json.loads(path.read_text())
    explorer_cells = [i for i, c in enumerate(saved["cells"]) if c["cell_type"] == "code"
                      and any(WIDGET_MIME in o.get("data", {}) for o in c.get("outputs", []))]
    page = notebook_page(chapter)
    # the widget manager answers once its kernel is connected; give a widget view time to load
    page.wait_for_function("() => !document.body.innerText.includes('Loading widget...')",
                           timeout=30_000, polling=500)
    cells = page.evaluate(_JS_CELLS)
    page.screenshot(path=str(shots / f"{chapter}-shipped.png"))
    if explorer_cells:  # what a reader sees where the first explorer was saved
        page.locator(".jp-Notebook .jp-Cell").nth(explorer_cells[0]).locator(
            ".jp-OutputArea").screenshot(path=str(shots / f"{chapter}-shipped-explorer.png"))
    assert len(cells) == len(saved["cells"]), "the page does not show every cell"
    raw = [f"cell {c['index']}: {o['text'][:200]}" for c in cells for o in c["outputs"]
           if "VBox(" in o["text"] or "HBox(" in o["text"]]
    assert not raw, "raw widget text instead of a snapshot:\n" + "\n".join(raw)
    errors = _errors(cells)
    assert not errors, "error outputs in the shipped notebook:\n" + "\n".join(errors)
    for i in explorer_cells:
        shown = cells[i]["outputs"]
        assert any(o["images"] or "Interactive explorer" in o["text"] for o in shown), (
            f"cell {i}: an explorer was saved here but the page shows neither its snapshot nor "
            f"its note: {[o['mime'] + ': ' + o['text'][:200] for o in shown]}")


@pytest.mark.parametrize("chapter", RUN_CHAPTERS)
def test_chapter_runs_and_explorer_redraws(chapter, notebook_page, shots, lab, record_property):
    """Run All Cells in the browser, no error output, then move the first explorer's control:
    its picture must change."""
    _notebook(chapter)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    timings = {}
    t0 = time.perf_counter()
    page = notebook_page(chapter)
    timings["open"] = time.perf_counter() - t0

    prefix = page.evaluate(_JS_KERNEL_PREFIX)
    assert Path(prefix).resolve() == Path(sys.prefix).resolve(), (
        f"the notebook's kernel runs in {prefix}, not in this environment ({sys.prefix})")

    t0 = time.perf_counter()
    page.evaluate(_JS_RUN_ALL)
    try:
        page.wait_for_function("() => window.__runAll !== undefined",
                               timeout=CHAPTER_TIMEOUT * 1000, polling=1000)
    except PlaywrightTimeout:
        running = page.evaluate(_JS_RUNNING)
        pytest.fail(f"{chapter}: Run All Cells did not finish within {CHAPTER_TIMEOUT:.0f} s "
                    f"(BROWSER_CHAPTER_TIMEOUT); running {running[:1]}, {len(running)} cells "
                    f"not finished", pytrace=False)
    result = page.evaluate("() => window.__runAll")
    _wait_idle(page, 60)
    timings["run_all"] = time.perf_counter() - t0
    print(f"\n{chapter}: opened in {timings['open']:.1f} s, ran all cells in "
          f"{timings['run_all']:.1f} s ({result})")

    cells = page.evaluate(_JS_CELLS)
    errors = _errors(cells)
    assert not errors, f"{chapter}: error outputs after Run All:\n" + "\n".join(errors)
    assert result == {"ok": True}, f"{chapter}: Run All Cells reported {result}"
    counts = [c["count"] for c in cells if c["type"] == "code" and not c["empty"]]
    assert None not in counts, f"{chapter}: code cells that did not run: " + str(
        [c["index"] for c in cells if c["type"] == "code" and not c["empty"] and not c["count"]])
    assert counts == list(range(1, len(counts) + 1)), (
        f"{chapter}: execution counts {counts} are not one fresh run in order")

    t0 = time.perf_counter()
    found = page.evaluate(_JS_MARK_EXPLORER)
    assert found, f"{chapter}: no explorer (widget with a picture and a slider or dropdown)"
    print(f"{chapter}: explorer in cell {found['cell']}, moving its {found['kind']} "
          f"{found['label']!r}")
    picture = page.locator('[data-browser-test="picture"]')
    control = page.locator('[data-browser-test="control"]')
    picture.element_handle().wait_for_element_state("visible")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=picture.element_handle())
    before = picture.screenshot(path=str(shots / f"{chapter}-explorer-before.png"))
    old_src = picture.get_attribute("src")
    page.evaluate(_JS_WATCH_CALLBACKS)
    if found["kind"] == "slider":
        handle = control.locator(".noUi-handle")
        value, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
        handle.focus()
        page.keyboard.press("ArrowLeft" if value == top else "ArrowRight")
        moved = f"slider {found['label']!r} {value} → {handle.get_attribute('aria-valuenow')}"
    else:
        select = control.locator("select")
        options = select.locator("option").all_inner_texts()
        index = select.evaluate("s => s.selectedIndex")
        select.select_option(index=(index + 1) % len(options))
        moved = (f"dropdown {found['label']!r} {options[index]!r} → "
                 f"{options[(index + 1) % len(options)]!r}")
    try:
        page.wait_for_function(
            "([img, old]) => (img.getAttribute('src') !== old && img.complete"
            "                 && img.naturalWidth > 0) || window.__callbackErrors.length > 0",
            arg=[picture.element_handle(), old_src], timeout=120_000, polling=200)
    except PlaywrightTimeout:
        pytest.fail(f"{chapter}: {moved}, but the explorer's picture did not change within "
                    f"120 s", pytrace=False)
    _wait_idle(page, 60)
    callback_errors = ANSI.sub("", "\n".join(page.evaluate("() => window.__callbackErrors")))
    assert not callback_errors, (
        f"{chapter}: {moved}: the explorer's callback failed in the kernel (no cell shows "
        f"this):\n...{callback_errors[-2500:]}")
    after = picture.screenshot(path=str(shots / f"{chapter}-explorer-after.png"))
    timings["redraw"] = time.perf_counter() - t0
    changed = _pixels_changed(before, after)
    errors = _errors(page.evaluate(_JS_CELLS))
    assert not errors, f"{chapter}: error outputs after moving the explorer:\n" + "\n".join(
        errors)
    assert changed > 0.001, f"{chapter}: {moved}, but the explorer's picture did not change"

    for name, seconds in timings.items():
        record_property(f"seconds_{name}", round(seconds, 1))
    print(f"{chapter}: {moved}: redraw {timings['redraw']:.1f} s, "
          f"{changed:.1%} of the picture's pixels changed")
