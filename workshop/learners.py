"""Simulated learners on the workshop hub (for ``tests/test_hub.py``, ``scripts/measure_room.py``).

:class:`Hub` starts ``jupyterhub -f workshop/jupyterhub_config.py`` on free loopback ports with its
state in a given folder; :class:`Learner` does what a learner's browser does, through the same
public URLs: log in with the room password (the login form), get an API token, start the server,
then Run All on a notebook of their own copy through the Jupyter server's REST API
(``/user/<name>/api/contents``, ``/api/sessions``) and the kernel's websocket
(``/api/kernels/<id>/channels``), one cell after the other, stopping at the first error.

Only loopback addresses are used. Everything waits with a deadline and raises
:class:`TimeoutError` (naming what it waited for) when it passes.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
import websocket

COURSE = Path(__file__).resolve().parents[1]
CONFIG = COURSE / "workshop" / "jupyterhub_config.py"
PROBE_MARK = "__workshop_probe__"
# One line of a claim: ✓ (holds) or ≈ (mixed) then the statement and its numbers. The numbers
# are masked when statements are compared, so a rerun's last digits may differ.
CLAIM_LINE = re.compile(r"^\s*([✓✔≈])\s*(\S.*?)\s*$")
NUMBER = re.compile(r"[-+−]?(?:\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?|\.\d+)")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_command() -> str | None:
    """configurable-http-proxy on ``PATH`` or next to this Python (where .ci/run installs it)."""
    return shutil.which("configurable-http-proxy") or shutil.which(
        "configurable-http-proxy", path=str(Path(sys.executable).parent))


def claim_lines(texts) -> list[str]:
    """The claim lines (starting with ✓ or ≈) in a sequence of output texts, in order."""
    return [line.strip() for text in texts for line in text.splitlines()
            if CLAIM_LINE.match(line)]


def claim_statement(line: str) -> str:
    """A claim line with every number replaced by ``#`` (what a rerun must reproduce)."""
    mark, text = CLAIM_LINE.match(line).groups()
    return f"{mark} {NUMBER.sub('#', text)}"


def output_texts(cells: list[dict]) -> list[str]:
    """Every text an nbformat cell list shows: streams, and ``text/plain`` of results/displays."""
    texts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
            else:
                text = out.get("data", {}).get("text/plain", "")
            texts.append("".join(text) if isinstance(text, list) else text)
    return texts


# ------------------------------------------------------------------------------------------------
# The hub
# ------------------------------------------------------------------------------------------------


class Hub:
    """The workshop hub as a subprocess: ``with Hub(folder, **settings) as hub: ...``.

    ``settings`` become ``WORKSHOP_<NAME>`` environment variables (e.g. ``cull_timeout=60``);
    ports are free loopback ports; the room and presenter passwords are random. Stopping sends
    SIGTERM (the hub stops every learner's server, the proxy and the culler) and then checks that
    no process the hub started is left; stragglers are killed and reported in :attr:`leftovers`.
    """

    def __init__(self, folder: Path, **settings) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        self.admin_password = secrets.token_urlsafe(32)
        self.admin = "presenter"
        self.log_path = self.folder / "jupyterhub.log"
        self.settings = {"DIR": str(self.folder / "state"), "PORT": str(self.port),
                         "HUB_PORT": str(free_port()), "PROXY_API_PORT": str(free_port()),
                         "IP": "127.0.0.1", "PASSWORD": self.password,
                         "ADMIN_PASSWORD": self.admin_password, "ADMINS": self.admin}
        self.settings.update({k.upper(): str(v) for k, v in settings.items()})
        self.process: subprocess.Popen | None = None
        self.leftovers: list[str] = []
        self._admin_token: str | None = None

    @property
    def state(self) -> Path:
        return Path(self.settings["DIR"])

    def start(self, timeout: float = 120) -> Hub:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("WORKSHOP_", "JUPYTER_", "JUPYTERHUB_"))}
        env.update({f"WORKSHOP_{k}": v for k, v in self.settings.items()})
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)], cwd=self.folder, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited ({self.process.returncode}):\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/hub/api/", timeout=5).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"the hub did not answer at {self.url} within {timeout:.0f} s"
                                   f":\n{self.log_tail()}")
            time.sleep(0.5)

    def admin_token(self) -> str:
        """An API token of the presenter (logged in through the form with the admin password)."""
        if self._admin_token is None:
            presenter = Learner(self, self.admin, password=self.admin_password)
            self._admin_token = presenter.login()
        return self._admin_token

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        """A request to the hub's REST API ``/hub/api<path>`` (as the presenter by default)."""
        headers = {"Authorization": f"token {token or self.admin_token()}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers,
                                timeout=30, **kwargs)

    def user(self, name: str) -> dict:
        response = self.api("GET", f"/users/{name}")
        response.raise_for_status()
        return response.json()

    def processes(self) -> list[psutil.Process]:
        """Every process the hub started (servers, kernels, proxy, culler), recursively."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 60) -> None:
        if self.process is None:
            return
        started = self.processes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.leftovers.append(f"jupyterhub (pid {self.process.pid}) ignored SIGTERM")
        _, alive = psutil.wait_procs(started, timeout=15)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                self.leftovers.append(f"{proc.pid}: {' '.join(proc.cmdline())[:160]}")
                proc.kill()
        self.process = None

    def __enter__(self) -> Hub:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------
# A learner
# ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One Run All: the executed cells (nbformat dicts), the wall time, the kernel's usage."""

    path: str
    cells: list[dict]
    seconds: float
    kernel: dict = field(default_factory=dict)  # pid, peak RSS (MB), CPU seconds, threads, ...
    error: str | None = None

    @property
    def claims(self) -> list[str]:
        return claim_lines(output_texts(self.cells))


class Learner:
    """One simulated learner: ``login()``, ``spawn()``, ``run_all(path)``, ``stop_server()``."""

    def __init__(self, hub: Hub, name: str, password: str | None = None) -> None:
        self.hub, self.name = hub, name
        self.password = hub.password if password is None else password
        self.token: str | None = None
        self.session = requests.Session()

    # ---- the hub ----------------------------------------------------------------------------

    def login(self) -> str:
        """Log in through the hub's login form, then create an API token; returns it."""
        hub = self.hub.url
        page = self.session.get(f"{hub}/hub/login", timeout=30)
        page.raise_for_status()
        xsrf = self.session.cookies.get("_xsrf", "")
        response = self.session.post(
            f"{hub}/hub/login?next=", timeout=60, allow_redirects=False,
            data={"username": self.name, "password": self.password, "_xsrf": xsrf})
        if response.status_code != 302:
            raise PermissionError(f"{self.name}: login refused ({response.status_code})")
        response = self.session.post(
            f"{hub}/hub/api/users/{self.name}/tokens", timeout=30,
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf", xsrf)},
            json={"note": "simulated learner", "expires_in": 4 * 3600})
        response.raise_for_status()
        self.token = response.json()["token"]
        return self.token

    def hub_api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A request to ``/hub/api<path>`` with this learner's own token."""
        return self.hub.api(method, path, token=self.token, **kwargs)

    def spawn(self, timeout: float = 180) -> dict:
        """Start this learner's server and wait until the hub says it is ready."""
        response = self.hub_api("POST", f"/users/{self.name}/server")
        if response.status_code not in (201, 202):
            raise RuntimeError(f"{self.name}: spawn refused ({response.status_code}: "
                               f"{response.text[:300]})")
        deadline = time.monotonic() + timeout
        while True:
            model = self.hub_api("GET", f"/users/{self.name}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return server
            if not model.get("pending") and not server:
                raise RuntimeError(f"{self.name}: the server stopped while starting:\n"
                                   f"{self.hub.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: server not ready within {timeout:.0f} s")
            time.sleep(0.5)

    def stop_server(self, timeout: float = 60) -> None:
        response = self.hub_api("DELETE", f"/users/{self.name}/server")
        if response.status_code not in (202, 204):
            raise RuntimeError(f"{self.name}: stop refused ({response.status_code})")
        deadline = time.monotonic() + timeout
        while self.hub_api("GET", f"/users/{self.name}").json().get("servers"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: server still running after {timeout:.0f} s")
            time.sleep(0.5)

    # ---- the learner's server -------------------------------------------------------------

    def server_url(self, path: str, owner: str | None = None) -> str:
        return f"{self.hub.url}/user/{owner or self.name}{path}"

    def api(self, method: str, path: str, owner: str | None = None,
            **kwargs) -> requests.Response:
        """A request to ``/user/<owner>/api<path>`` (this learner's server by default) with this
        learner's token; redirects are not followed, so a refusal shows as it is."""
        kwargs.setdefault("timeout", 180)
        return requests.request(method, self.server_url(f"/api{path}", owner),
                                headers={"Authorization": f"token {self.token}"},
                                allow_redirects=False, **kwargs)

    def read_notebook(self, path: str) -> dict:
        response = self.api("GET", f"/contents/{path}", params={"content": "1"})
        response.raise_for_status()
        return response.json()["content"]

    def save_notebook(self, path: str, notebook: dict) -> None:
        response = self.api("PUT", f"/contents/{path}",
                            json={"type": "notebook", "format": "json", "content": notebook})
        response.raise_for_status()

    def run_all(self, path: str, timeout: float = 900, probe: bool = True,
                save: bool = True) -> Run:
        """Run All on ``path`` of this learner's server in a fresh kernel: each code cell in
        order through the kernel's websocket, stopping at the first error. Returns the executed
        cells; with ``save`` they are written back to the learner's copy; with ``probe`` the
        kernel reports its peak RSS, CPU seconds and limits afterwards. The kernel is shut down.
        """
        notebook = self.read_notebook(path)
        response = self.api("POST", "/sessions", json={
            "path": path, "type": "notebook", "name": Path(path).name,
            "kernel": {"name": notebook["metadata"].get("kernelspec", {}).get("name",
                                                                                "python3")}})
        response.raise_for_status()
        session = response.json()
        kernel_id = session["kernel"]["id"]
        try:
            with _KernelChannel(self, kernel_id, timeout) as kernel:
                kernel.request("kernel_info_request", {}, deadline_s=120)
                start = time.perf_counter()
                error = None
                for cell in notebook["cells"]:
                    if cell["cell_type"] != "code":
                        continue
                    source = cell["source"] if isinstance(cell["source"], str) else "".join(
                        cell["source"])
                    cell["outputs"], cell["execution_count"] = [], None
                    if not source.strip():
                        continue
                    reply, outputs = kernel.execute(source)
                    cell["outputs"], cell["execution_count"] = outputs, reply.get(
                        "execution_count")
                    if reply.get("status") != "ok":
                        error = (f"{path}: {reply.get('ename')}: {reply.get('evalue')} in\n"
                                 f"{source[:500]}")
                        break
                seconds = time.perf_counter() - start
                usage = kernel.probe() if probe and error is None else {}
        finally:
            with contextlib.suppress(requests.RequestException):
                self.api("DELETE", f"/sessions/{session['id']}")
        if save:
            self.save_notebook(path, notebook)
        return Run(path, notebook["cells"], seconds, usage, error)

    def kernel_python(self, code: str, path: str = "scratch.ipynb", timeout: float = 120) -> str:
        """Run ``code`` in a fresh kernel of this learner's server; returns what it printed
        (stdout and the error's name and message, if any)."""
        response = self.api("POST", "/sessions", json={
            "path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}})
        response.raise_for_status()
        session = response.json()
        try:
            with _KernelChannel(self, session["kernel"]["id"], timeout) as kernel:
                kernel.request("kernel_info_request", {}, deadline_s=120)
                reply, outputs = kernel.execute(code, store_history=False)
        finally:
            with contextlib.suppress(requests.RequestException):
                self.api("DELETE", f"/sessions/{session['id']}")
        text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
        if reply.get("status") != "ok":
            text += f"{reply.get('ename')}: {reply.get('evalue')}"
        return text


# The probe runs after Run All in the same kernel: peak RSS of the kernel (and of its largest
# child process), CPU seconds (kernel + children), threads, the memory limit it runs under, its
# environment (sys.prefix) and home.
_PROBE = f"""
def __workshop_probe():
    import json, os, resource, sys, torch
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    print({PROBE_MARK!r}, json.dumps(dict(
        pid=os.getpid(), peak_rss_mb=max(me.ru_maxrss, kids.ru_maxrss) / 1024,
        cpu_seconds=me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
        torch_threads=torch.get_num_threads(), rlimit_data=resource.getrlimit(
            resource.RLIMIT_DATA)[0], cache=os.environ.get('TUTORIAL_UTILS_CACHE'),
        prefix=sys.prefix, home=os.environ.get('HOME'))))
__workshop_probe(); del __workshop_probe
"""


class _KernelChannel:
    """The kernel's websocket (``/api/kernels/<id>/channels``) of a learner's server."""

    def __init__(self, learner: Learner, kernel_id: str, timeout: float) -> None:
        self.learner, self.timeout = learner, timeout
        self.deadline = time.monotonic() + timeout
        self.session_id = uuid.uuid4().hex
        url = learner.server_url(f"/api/kernels/{kernel_id}/channels").replace("http", "ws", 1)
        # the server answers the handshake once the kernel is up: on a loaded machine, minutes
        self.ws = websocket.create_connection(
            f"{url}?session_id={self.session_id}", timeout=min(timeout, 300),
            header=[f"Authorization: token {learner.token}"])

    def __enter__(self) -> _KernelChannel:
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()

    def _send(self, msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": self.learner.name,
                       "session": self.session_id, "version": "5.3",
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
            "buffers": []}))
        return msg_id

    def _messages(self, msg_id: str, deadline: float):
        """Messages whose parent is ``msg_id``, until ``deadline`` (monotonic seconds)."""
        while True:
            left = min(deadline, self.deadline) - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.learner.name}: the kernel did not answer within "
                                   f"{self.timeout:.0f} s")
            self.ws.settimeout(min(left, 30))
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if isinstance(frame, bytes):  # a message with binary buffers (widget state)
                continue
            msg = json.loads(frame)
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                yield msg

    def request(self, msg_type: str, content: dict, deadline_s: float) -> dict:
        """Send a shell request and return its reply's content."""
        msg_id = self._send(msg_type, content)
        reply_type = msg_type.replace("_request", "_reply")
        for msg in self._messages(msg_id, time.monotonic() + deadline_s):
            if msg["channel"] == "shell" and msg["header"]["msg_type"] == reply_type:
                return msg["content"]
        raise AssertionError("unreachable")

    def execute(self, code: str, store_history: bool = True) -> tuple[dict, list[dict]]:
        """Execute ``code``; returns the execute_reply content and the nbformat outputs."""
        msg_id = self._send("execute_request", {
            "code": code, "silent": False, "store_history": store_history,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        reply, idle, outputs = None, False, []
        for msg in self._messages(msg_id, self.deadline):
            kind, content = msg["header"]["msg_type"], msg["content"]
            if msg["channel"] == "shell" and kind == "execute_reply":
                reply = content
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "stream":
                if outputs and outputs[-1]["output_type"] == "stream" and \
                        outputs[-1]["name"] == content["name"]:
                    outputs[-1]["text"] += content["text"]
                else:
                    outputs.append({"output_type": "stream", "name": content["name"],
                                    "text": content["text"]})
            elif kind in ("display_data", "execute_result"):
                out = {"output_type": kind, "data": content["data"],
                       "metadata": content.get("metadata", {})}
                if kind == "execute_result":
                    out["execution_count"] = content.get("execution_count")
                outputs.append(out)
            elif kind == "error":
                outputs.append({"output_type": "error", "ename": content["ename"],
                                "evalue": content["evalue"],
                                "traceback": content["traceback"]})
            elif kind == "clear_output":
                outputs.clear()
            if reply is not None and idle:
                return reply, outputs
        raise AssertionError("unreachable")

    def probe(self) -> dict:
        reply, outputs = self.execute(_PROBE, store_history=False)
        text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
        for line in text.splitlines():
            if line.startswith(PROBE_MARK):
                return json.loads(line[len(PROBE_MARK):])
        raise RuntimeError(f"{self.learner.name}: the kernel probe printed nothing ({reply})")
