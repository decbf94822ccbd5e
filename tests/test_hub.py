"""A room of simulated learners on the workshop hub (marker ``hub``; ``pytest -m hub``).

One hub per module (``workshop/jupyterhub_config.py``, free loopback ports, a temporary state
folder): the presenter and four learners log in through the login form with the room password.
``alice``, ``bob`` and ``carol`` run chapter 1 at the same time through the Jupyter server REST
and kernel websocket APIs, with their JupyterLab tab "open" (a poll every 5 s, as JupyterLab
does); ``dora`` starts her server and does nothing. The sign cache starts empty, so the three
kernels render and cache the sign set at the same moment. Then:

* every learner's run printed the shipped chapter's claim statements (numbers masked), and the
  three runs printed identical claim lines;
* each learner has their own copy of ``notebooks/``; what one writes the others and the shipped
  chapter never see; the course's ``data/`` and the shipped chapter are unchanged;
* a learner's token reaches only their own server: reading another's files, listing another's
  folder by ``..``, starting or stopping another's server are refused, and the other's server
  keeps running;
* the limits apply in the kernels: one thread (CPU limit 1), ``MemoryError`` past the memory
  limit;
* the shared cache holds one valid sign set and no temporary file;
* the idle culler stopped ``dora`` and none of the three with a tab open;
* stopping the hub leaves no process behind.

Needs ``jupyterhub``, ``jupyterhub-idle-culler`` (the ``workshop`` extra, part of ``dev``) and
``configurable-http-proxy`` from npm (``.ci/run`` installs it). Locally a missing tool skips;
under ``CI=true`` it fails.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _servers import in_ci

pytestmark = pytest.mark.hub

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHAPTER = "notebooks/01_inference.ipynb"  # the shortest chapter
RUNNERS = ("alice", "bob", "carol")
IDLE = "dora"
CULL_TIMEOUT, CULL_EVERY, ACTIVITY = 60, 10, 10  # seconds
MEM_LIMIT = 3 * 2**30
RUN_TIMEOUT = float(os.environ.get("HUB_CHAPTER_TIMEOUT", "900"))


def _missing_tools() -> list[str]:
    missing = [f"{m} (pip install -e '.[workshop]')" for m in ("jupyterhub",
               "jupyterhub_idle_culler", "websocket") if importlib.util.find_spec(m) is None]
    if not missing:
        from workshop.learners import proxy_command

        if proxy_command() is None:
            missing.append("configurable-http-proxy (npm install -g configurable-http-proxy)")
    return missing


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_sha(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


class Room:
    """What the module's tests share: the hub, the learners, their runs, the report."""

    def __init__(self, hub, learners, idle, runs, spawned_at, shipped, data_before, say):
        self.hub, self.learners, self.idle, self.runs = hub, learners, idle, runs
        self.spawned_at, self.shipped, self.data_before, self.say = (spawned_at, shipped,
                                                                      data_before, say)


@pytest.fixture(scope="module")
def room(request):
    missing = _missing_tools()
    if missing:
        if in_ci():
            pytest.fail("CI=true and the hub tools are missing: " + ", ".join(missing)
                        + " (.ci/run installs them)", pytrace=False)
        pytest.skip("missing: " + ", ".join(missing))
    from workshop.learners import Hub, Learner

    capture = request.config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:  # shown in the CI log even though pytest captures output
        with capture.global_and_fixture_disabled():
            print(line, flush=True)

    folder = Path(tempfile.mkdtemp(prefix="tutorial-hub-"))
    shipped = {"chapter": _sha(ROOT / CHAPTER), "notebooks": _tree_sha(ROOT / "notebooks")}
    data_before = _tree_sha(ROOT / "data")
    hub = Hub(folder, cull_timeout=CULL_TIMEOUT, cull_every=CULL_EVERY,
              activity_interval=ACTIVITY, mem_limit="3G", cpu_limit=1)
    stop_polling = threading.Event()
    try:
        t0 = time.perf_counter()
        hub.start()
        say(f"\nhub: {hub.url} (state {hub.state}), up in {time.perf_counter() - t0:.1f} s")
        learners = {name: Learner(hub, name) for name in (*RUNNERS, IDLE)}
        with ThreadPoolExecutor(len(learners)) as pool:
            list(pool.map(lambda learner: (learner.login(), learner.spawn()), learners.values()))
        spawned_at = time.monotonic()
        say(f"hub: 4 learners logged in and spawned in {time.perf_counter() - t0:.1f} s")

        def poll_like_an_open_tab():
            while not stop_polling.wait(5):
                for name in RUNNERS:
                    try:
                        learners[name].api("GET", "/kernels", timeout=10)
                    except Exception:  # noqa: BLE001 - a stopped server: nothing to poll
                        pass

        threading.Thread(target=poll_like_an_open_tab, daemon=True).start()
        barrier = threading.Barrier(len(RUNNERS))

        def run(name):
            barrier.wait(timeout=60)
            return learners[name].run_all(CHAPTER, timeout=RUN_TIMEOUT)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(RUNNERS)) as pool:
            runs = dict(zip(RUNNERS, pool.map(run, RUNNERS), strict=True))
        say(f"hub: 3 learners ran {CHAPTER} at once, all done in "
            f"{time.perf_counter() - t0:.1f} s")
        for name, result in runs.items():
            k = result.kernel
            say(f"hub: {name}: Run All {result.seconds:.1f} s"
                + (f", kernel peak RSS {k['peak_rss_mb']:.0f} MB, {k['cpu_seconds']:.1f} CPU s,"
                   f" {k['torch_threads']} thread(s)" if k else "")
                + (f" — {result.error}" if result.error else ""))
        yield Room(hub, learners, learners[IDLE], runs, spawned_at, shipped, data_before, say)
    finally:
        stop_polling.set()
        hub.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_every_learner_reproduces_the_chapters_claims(room):
    from workshop.learners import claim_lines, claim_statement, output_texts

    shipped = claim_lines(output_texts(json.loads((ROOT / CHAPTER).read_text())["cells"]))
    assert len(shipped) >= 5, f"{CHAPTER} as shipped prints only {len(shipped)} claim lines"
    expected = [claim_statement(line) for line in shipped]
    for name, run in room.runs.items():
        assert run.error is None, f"{name}: Run All stopped: {run.error}"
        code = [c for c in run.cells if c["cell_type"] == "code" and c["source"].strip()]
        counts = [c["execution_count"] for c in code]
        assert counts == list(range(1, len(code) + 1)), f"{name}: cells did not all run once"
        errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{name}: error outputs {errors[:1]}"
        got = [claim_statement(line) for line in run.claims]
        assert got == expected, (
            f"{name}: the claims differ from the shipped chapter's:\n"
            + "\n".join(f"- {a}\n+ {b}" for a, b in zip(expected, got, strict=False) if a != b)
            + f"\n({len(expected)} shipped, {len(got)} printed)")
    first = room.runs[RUNNERS[0]].claims
    for name in RUNNERS[1:]:
        assert room.runs[name].claims == first, (
            f"{name} and {RUNNERS[0]} ran the same chapter on the same machine but printed "
            f"different numbers")
    room.say(f"hub: claims: each learner printed the {len(expected)} claim statements of the "
             f"shipped {CHAPTER}; the three runs' claim lines are identical")


def test_each_learner_has_their_own_copy(room):
    homes = {name: room.hub.state / "home" / name for name in room.learners}
    copies = {name: home / CHAPTER for name, home in homes.items()}
    inodes = {os.stat(p).st_ino for p in copies.values()} | {os.stat(ROOT / CHAPTER).st_ino}
    assert len(inodes) == len(copies) + 1, "learners share a notebook file"
    for name in RUNNERS:  # each saved their own run into their own copy
        saved = json.loads(copies[name].read_text())
        counts = [c["execution_count"] for c in saved["cells"] if c["cell_type"] == "code"
                  and "".join(c["source"]).strip()]
        assert counts == list(range(1, len(counts) + 1)), f"{name}'s copy lacks their run"
    assert _sha(copies[IDLE]) == room.shipped["chapter"], "dora's untouched copy was changed"
    alice, bob = room.learners["alice"], room.learners["bob"]
    note = {"type": "file", "format": "text", "content": "alice's own notes"}
    assert alice.api("PUT", "/contents/notebooks/notes.txt", json=note).status_code in (200, 201)
    listing = {item["name"] for item in bob.api("GET", "/contents/notebooks").json()["content"]}
    assert "notes.txt" not in listing and "01_inference.ipynb" in listing
    assert not (ROOT / "notebooks" / "notes.txt").exists()
    assert _tree_sha(ROOT / "notebooks") == room.shipped["notebooks"], (
        "the shipped notebooks/ changed while the learners worked")
    assert _tree_sha(ROOT / "data") == room.data_before, "the course's data/ (zoo) changed"
    room.say(f"hub: copies: 4 learners, 4 copies of {CHAPTER} (separate files); each runner's "
             f"copy holds their own run, dora's is as shipped; alice's notes.txt is not in "
             f"bob's folder; the shipped notebooks/ and data/ are unchanged")


def test_a_learner_cannot_reach_another_learners_server(room):
    alice, bob = room.learners["alice"], room.learners["bob"]
    checks = {
        "read bob's chapter": alice.api("GET", f"/contents/{CHAPTER}", owner="bob"),
        "list bob's home": alice.api("GET", "/contents/", owner="bob"),
        "list ../bob from her own server": alice.api("GET", "/contents/%2E%2E/bob/notebooks"),
        "open a kernel on bob's server": alice.api("POST", "/kernels", owner="bob", json={}),
        "stop bob's server": alice.hub_api("DELETE", "/users/bob/server"),
        "start bob's server": alice.hub_api("POST", "/users/bob/server"),
        "read bob's hub record": alice.hub_api("GET", "/users/bob"),
    }
    # alice's browser session (cookie) following every redirect ends at a refusal too
    page = alice.session.get(f"{room.hub.url}/user/bob/api/contents/{CHAPTER}", timeout=60)
    lines = []
    for what, response in checks.items():
        lines.append(f"{what}: {response.status_code}")
        assert response.status_code in (403, 404), (
            f"alice could {what} ({response.status_code}: {response.text[:300]})")
        assert "cells" not in response.text
    lines.append(f"bob's chapter with alice's cookie: {page.status_code}")
    assert page.status_code == 403 and '"cells"' not in page.text, (
        f"alice's browser reached bob's chapter ({page.status_code})")
    assert room.hub.user("bob")["servers"][""]["ready"], "bob's server stopped"
    assert bob.api("GET", "/status").status_code == 200
    # what the hub cannot prevent with one Unix user for every learner (README says so)
    bob_file = room.hub.state / "home" / "bob" / CHAPTER
    shared_uid = alice.kernel_python(f"print(len(open({str(bob_file)!r}).read()) > 0)")
    lines.append(f"alice's kernel reads bob's file on disk: {shared_uid.strip()} (one Unix user)")
    room.say("hub: isolation (refused = 403/404): " + "; ".join(lines))


def test_limits_apply_in_the_kernels(room):
    for name, run in room.runs.items():
        assert run.kernel["prefix"] == sys.prefix, f"{name}: kernel in another environment"
        assert run.kernel["home"] == str(room.hub.state / "home" / name)
        assert run.kernel["torch_threads"] == 1, f"{name}: CPU limit 1 but {run.kernel}"
        assert run.kernel["rlimit_data"] == MEM_LIMIT, f"{name}: memory limit not applied"
        assert run.kernel["peak_rss_mb"] * 2**20 < MEM_LIMIT
    out = room.learners["carol"].kernel_python(
        "try:\n    block = bytearray(4 * 2**30)\n    print('allocated 4 GiB')\n"
        "except MemoryError:\n    print('MemoryError')")
    assert out.strip() == "MemoryError", f"a 4 GiB allocation under a 3 GiB limit gave {out!r}"
    room.say("hub: limits: every kernel in the one shared environment and its learner's home; "
             "1 torch thread per kernel; RLIMIT_DATA 3 GiB in every kernel; a "
             "4 GiB allocation raised MemoryError and the kernel, the server and the hub kept "
             "running")


def test_the_shared_cache_was_filled_once_and_is_valid(room, monkeypatch):
    cache = room.hub.state / "cache"
    assert {run.kernel["cache"] for run in room.runs.values()} == {str(cache)}
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 1 and entries[0].startswith("signs_") and entries[0].endswith(".pt"), (
        f"the shared cache holds {entries} (a temporary file left behind?)")
    before = (cache / entries[0]).stat().st_mtime_ns
    monkeypatch.setenv("TUTORIAL_UTILS_CACHE", str(cache))
    from tutorial_utils import data

    signs = data.load_signs()  # an invalid entry would be regenerated and rewritten
    assert (cache / entries[0]).stat().st_mtime_ns == before, "the cached sign set was invalid"
    assert len(signs.x_train) == 14 * 300
    room.say(f"hub: cache: 3 kernels filled the empty shared cache at once; it holds one valid "
             f"entry ({entries[0]}) and no temporary file")


def test_the_idle_learner_is_culled_and_the_active_ones_are_not(room):
    deadline = room.spawned_at + CULL_TIMEOUT + CULL_EVERY + 2 * ACTIVITY + 90
    while room.hub.user(IDLE)["servers"]:
        assert time.monotonic() < deadline, (
            f"the idle culler did not stop {IDLE}'s server within "
            f"{deadline - room.spawned_at:.0f} s:\n{room.hub.log_tail()}")
        time.sleep(2)
    culled_after = time.monotonic() - room.spawned_at
    for name in RUNNERS:
        assert room.hub.user(name)["servers"], f"the culler stopped {name}, whose tab is open"
    room.say(f"hub: culling: {IDLE}'s idle server was stopped {culled_after:.0f} s after it "
             f"started (timeout {CULL_TIMEOUT} s, checked every {CULL_EVERY} s); alice, bob "
             f"and carol, with a tab open, kept theirs")


def test_shutdown_leaves_nothing_running(room):
    room.learners["alice"].stop_server()  # a learner may stop their own server
    assert not room.hub.user("alice")["servers"]
    started = room.hub.processes()
    assert len(started) >= 4, f"expected proxy, culler and two servers, found {started}"
    room.hub.stop()
    assert not room.hub.leftovers, f"left running after the hub stopped: {room.hub.leftovers}"
    room.say(f"hub: shutdown: alice stopped her own server; the hub stopped the others, the "
             f"proxy and the culler; {len(started)} processes ended, none left")
