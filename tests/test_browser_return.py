"""Coming back to a chapter (marker ``browser``): autosave on, as a learner has it.

One JupyterLab server with the settings the environment ships
(``jupyter-config/lab/settings/overrides.d``, given as the server's app settings folder, which
is where ``scripts/lab_settings.py`` and ``pip install .`` put them) and autosave on, its
interval shortened to :data:`AUTOSAVE_S` seconds so that the test waits past it in seconds, not
minutes. The window is 1366 × 1000 with JupyterLab's default layout (file browser open).

* ``test_opening_a_chapter_does_not_modify_it``: a chapter with the metadata
  ``scripts/lab_metadata.py`` writes, opened and left idle past autosave, is not marked
  modified and its file is byte for byte unchanged.
* ``test_reopened_chapter_shows_its_explorers``: chapter 1 run in the browser, autosaved,
  closed (kernel shut down) and reopened shows its explorers — never "Error displaying widget:
  model not found" — and the saved file holds the state of every widget its outputs show. At
  1366 px each explorer's controls fit the output area and every slider has a usable track.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from _servers import free_port, playwright, stop
from test_browser import (
    _JS_PANEL_READY,
    _JS_RUN_ALL,
    CHAPTER_TIMEOUT,
    CHROMIUM_ARGS,
    ROOT,
    WIDGET_MIME,
    Lab,
    _chromium,
    _no_browser,
    _notebook,
    _wait_idle,
)

pytestmark = pytest.mark.browser

AUTOSAVE_S = 8  # JupyterLab's default is 120 s
SHIPPED_SETTINGS = ROOT / "jupyter-config" / "lab" / "settings"
VIEWPORT = {"width": 1366, "height": 1000}
MIN_TRACK_PX = 80  # a slider track narrower than this cannot be dragged to a middle value
LAB_SETTINGS = {  # the learner's defaults, except the interval and the internet checks
    "@jupyterlab/docmanager-extension/plugin": {"autosave": True,
                                                "autosaveInterval": AUTOSAVE_S},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}


def _lab_metadata():
    spec = importlib.util.spec_from_file_location("lab_metadata",
                                                  ROOT / "scripts" / "lab_metadata.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="tutorial-return-") as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def served(scratch) -> Path:
    folder = scratch / "notebooks"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def lab(scratch, served):
    folder = scratch / "jupyterlab"
    settings = folder / "settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    app_settings = folder / "app-settings"  # the environment's share/jupyter/lab/settings
    shutil.copytree(SHIPPED_SETTINGS, app_settings)
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(folder / "config"),
           "JUPYTER_DATA_DIR": str(folder / "data"),
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
           "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly",
           f"--LabApp.app_settings_dir={app_settings}",
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
                    pytest.fail(f"JupyterLab did not answer within 120 s:\n"
                                f"{server_lab.log_tail()}")
                time.sleep(0.5)
        yield server_lab
    finally:
        stop(server)


@pytest.fixture(scope="module")
def browser(scratch):
    executable = _chromium()
    if executable is None:
        _no_browser("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    try:
        manager = playwright()  # the process's one driver (tests/_servers.py)
    except ImportError as exc:
        _no_browser(f"playwright is not installed ({exc}); pip install -e '.[dev]'")
    try:
        context = manager.chromium.launch_persistent_context(
            str(scratch / "chromium-profile"), executable_path=executable,
            headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT)
    except Exception as exc:
        _no_browser(f"{executable} could not be started: {exc}")
    try:
        yield context
    finally:
        context.close()


def _open(browser, lab, name: str, reset: bool = True):
    page = browser.new_page()
    page.set_default_timeout(120_000)
    url = lab.url(name) if reset else lab.url(name).replace("?reset&", "?")
    page.goto(url)
    page.wait_for_function(_JS_PANEL_READY, arg=name, polling=250)
    _wait_idle(page, 120)
    return page


def _close(page, lab) -> None:
    with contextlib.suppress(Exception):
        page.close()
    with contextlib.suppress(Exception):
        lab.shutdown_sessions()


def _copy_chapter(chapter: str, served: Path) -> Path:
    target = served / f"{chapter}.ipynb"
    shutil.copyfile(_notebook(chapter), target)
    _lab_metadata().normalise(target)  # as shipped once scripts/lab_metadata.py has run
    return target


_JS_DIRTY = "() => window.jupyterapp.shell.currentWidget.context.model.dirty"
# Every explorer output on the page: its controls' boxes, slider tracks and the output's box.
_JS_LAYOUT = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const out = [];
  for (const [index, cell] of panel.content.widgets.entries()) {
    for (const area of cell.node.querySelectorAll('.jp-OutputArea-output')) {
      if (!area.querySelector('.widget-image, .widget-output')) continue;
      const edge = area.getBoundingClientRect().right;
      const controls = [...area.querySelectorAll('.widget-slider, .widget-dropdown,'
                                                 + ' .widget-toggle-buttons')];
      if (!controls.length) continue;
      out.push({cell: index, edge: edge, controls: controls.map(c => {
        const track = c.querySelector('.noUi-target, .slider-container');
        const label = c.querySelector('.widget-label');
        const box = c.getBoundingClientRect();
        return {label: label ? label.innerText : c.className, right: box.right, width: box.width,
                track: track ? track.getBoundingClientRect().width : null};
      })});
    }
  }
  return out;
}"""


def test_opening_a_chapter_does_not_modify_it(browser, lab, served):
    path = _copy_chapter("05_conclusions", served)
    before = path.read_bytes()
    page = _open(browser, lab, path.name)
    try:
        time.sleep(AUTOSAVE_S * 2 + 2)
        dirty = page.evaluate(_JS_DIRTY)
    finally:
        _close(page, lab)
    after = path.read_bytes()
    assert not dirty, "opening the chapter marked it modified"
    if after != before:
        import difflib

        diff = difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(),
                                    lineterm="", n=1)
        pytest.fail("opening the chapter and waiting past autosave rewrote its file:\n"
                    + "\n".join(list(diff)[:40]), pytrace=False)


def test_reopened_chapter_shows_its_explorers(browser, lab, served):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    path = _copy_chapter("01_inference", served)
    page = _open(browser, lab, path.name)
    try:
        page.evaluate(_JS_RUN_ALL)
        try:
            page.wait_for_function("() => window.__runAll !== undefined",
                                   timeout=CHAPTER_TIMEOUT * 1000, polling=1000)
        except PlaywrightTimeout:
            pytest.fail(f"Run All did not finish within {CHAPTER_TIMEOUT:.0f} s", pytrace=False)
        _wait_idle(page, 60)  # error outputs are test_browser.py's concern; here: coming back
        layout = page.evaluate(_JS_LAYOUT)
        ran = path.stat().st_mtime
        deadline = time.monotonic() + AUTOSAVE_S * 4 + 10
        while time.monotonic() < deadline and (path.stat().st_mtime == ran or page.evaluate(
                _JS_DIRTY)):
            time.sleep(1)  # autosave, not a Save: nobody presses Ctrl+S here
        assert not page.evaluate(_JS_DIRTY), f"autosave did not save within {AUTOSAVE_S * 4} s"
    finally:
        _close(page, lab)

    assert layout, "no explorer with controls after Run All"
    narrow = [(e["cell"], c["label"], round(c["track"])) for e in layout for c in e["controls"]
              if c["track"] is not None and c["track"] < MIN_TRACK_PX]
    outside = [(e["cell"], c["label"], round(c["right"] - e["edge"])) for e in layout
               for c in e["controls"] if c["right"] > e["edge"] + 1]
    assert not narrow, f"slider tracks narrower than {MIN_TRACK_PX} px at 1366 px: {narrow}"
    assert not outside, f"controls past the output's right edge (px): {outside}"

    nb = nbformat.read(path, as_version=4)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    shown = {o["data"][WIDGET_MIME]["model_id"] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if WIDGET_MIME in o.get("data", {})}
    assert shown, "the autosaved chapter shows no widget"
    lost = shown - set(state.get("state", {}))
    assert not lost, (f"the autosaved file lacks the state of {len(lost)} of {len(shown)} widgets "
                      "its outputs show (the shipped saveState setting is not in effect, or a "
                      "widget, e.g. a progress bar, closed itself after it was shown)")

    page = _open(browser, lab, path.name)
    try:
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-OutputArea-output img').length > 0",
            timeout=60_000)
        time.sleep(3)  # the widget manager restores the saved models
        text = page.evaluate("() => document.body.innerText")
        pictures = page.evaluate(
            "() => [...document.querySelectorAll('.jp-OutputArea-output img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length")
    finally:
        _close(page, lab)
    assert "model not found" not in text and "Error displaying widget" not in text, (
        "the reopened chapter shows 'Error displaying widget' in place of an explorer")
    assert pictures > 0
