"""JupyterHub for a room on one machine: ``jupyterhub -f workshop/jupyterhub_config.py``.

Run it from the environment the course is installed in (``pip install -e ".[workshop]"``); every
learner's server and kernel use that one environment. Settings come from environment variables:

====================================  ==========================================================
``WORKSHOP_PASSWORD`` (required)      the room password (8 characters or more); a learner logs
                                      in with any name and this password
``WORKSHOP_ADMIN_PASSWORD``           the presenter's password (32 characters or more)
``WORKSHOP_ADMINS``                   names that log in with it as admins (comma-separated,
                                      default ``presenter``)
``WORKSHOP_DIR``                      learners' homes, shared cache, hub database
                                      (default ``~/gradients-workshop``)
``WORKSHOP_IP`` / ``WORKSHOP_PORT``   where the room connects (default ``127.0.0.1`` / 8000;
                                      ``0.0.0.0`` for the room, with TLS below)
``WORKSHOP_HUB_PORT``                 the hub's internal port, loopback (default 8081)
``WORKSHOP_PROXY_API_PORT``           configurable-http-proxy's API port, loopback (default 8001)
``WORKSHOP_SSL_CERT`` / ``_KEY``      TLS certificate and key for the public port
``WORKSHOP_MEM_LIMIT``                memory limit per learner process (default ``3G``)
``WORKSHOP_CPU_LIMIT``                threads per learner kernel (default 1)
``WORKSHOP_CULL_TIMEOUT``             stop a learner's server idle this long (s, default 3600)
``WORKSHOP_CULL_EVERY``               how often the culler looks (s, default 300)
``WORKSHOP_KERNEL_CULL_TIMEOUT``      shut a kernel with no open tab idle this long (s, 1200)
``WORKSHOP_ACTIVITY_INTERVAL``        how often servers and proxy report activity (s, 300)
====================================  ==========================================================

Authentication: JupyterHub's own ``SharedPasswordAuthenticator`` (no sign-up step; the password
goes on the first slide). Anyone with the room password can log in under *any* learner name, so
it separates learners against accidents, not against each other; for that, use
``jupyterhub-nativeauthenticator`` or ``jupyterhub-firstuseauthenticator`` instead.

Spawner: :class:`workshop.spawner.CourseSpawner` (see there for what the limits enforce). Idle
servers are stopped by ``jupyterhub-idle-culler``, run by the hub as a managed service. Each
learner gets a copy of ``notebooks/`` on first login; the generated sign set is cached once in
``<WORKSHOP_DIR>/cache`` for everyone (written atomically, so learners filling it at the same
time are safe); the model zoo is read from the course's ``data/`` and never written.
"""

import os
import shutil
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

COURSE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(COURSE))  # makes `workshop.spawner` importable
from workshop.spawner import CourseSpawner, copy_course_notebooks  # noqa: E402


def _setting(name: str, default=None):
    value = os.environ.get(f"WORKSHOP_{name}", "").strip()
    return value if value else default


def _seconds(name: str, default: int) -> int:
    value = _setting(name, str(default))
    try:
        seconds = int(value)
    except ValueError:
        raise ValueError(f"WORKSHOP_{name} must be a whole number of seconds, "
                         f"got {value!r}") from None
    if seconds <= 0:
        raise ValueError(f"WORKSHOP_{name} must be positive, got {seconds}")
    return seconds


password = _setting("PASSWORD")
if not password:
    raise ValueError("set WORKSHOP_PASSWORD to the room password (8 characters or more)")
state = Path(_setting("DIR", str(Path.home() / "gradients-workshop"))).expanduser().resolve()
for folder in ("hub", "home", "cache"):
    (state / folder).mkdir(parents=True, exist_ok=True)
cull_timeout, cull_every = _seconds("CULL_TIMEOUT", 3600), _seconds("CULL_EVERY", 300)
activity = _seconds("ACTIVITY_INTERVAL", 300)

# ---- the hub, the proxy, where state lives -----------------------------------------------------
c.JupyterHub.bind_url = f"http://{_setting('IP', '127.0.0.1')}:{_setting('PORT', '8000')}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{_setting('HUB_PORT', '8081')}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{_setting('PROXY_API_PORT', '8001')}"
proxy = shutil.which("configurable-http-proxy") or shutil.which(
    "configurable-http-proxy", path=str(Path(sys.executable).parent))
if proxy:
    c.ConfigurableHTTPProxy.command = [proxy]
c.ConfigurableHTTPProxy.pid_file = str(state / "hub" / "proxy.pid")
if _setting("SSL_CERT"):
    c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = _setting("SSL_CERT"), _setting("SSL_KEY")
c.JupyterHub.db_url = f"sqlite:///{state / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "hub" / "jupyterhub_cookie_secret")
c.JupyterHub.last_activity_interval = activity
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every learner's server

# ---- who may log in ----------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = password
if _setting("ADMIN_PASSWORD"):
    c.SharedPasswordAuthenticator.admin_password = _setting("ADMIN_PASSWORD")
    c.Authenticator.admin_users = {n.strip() for n in _setting("ADMINS", "presenter").split(",")
                                   if n.strip()}
c.Authenticator.allow_all = True
# names become folder names: lower-case letters, digits, '.', '_' and '-' only
c.Authenticator.username_pattern = r"^[a-z0-9][a-z0-9._-]{0,31}$"

# ---- each learner's server ---------------------------------------------------------------------
c.JupyterHub.spawner_class = CourseSpawner
c.CourseSpawner.home_dir_template = str(state / "home" / "{username}")
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab/tree/notebooks"
c.Spawner.pre_spawn_hook = copy_course_notebooks
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]  # the one shared environment
c.Spawner.args = [
    "--LabApp.extension_manager=readonly",  # no package-index queries from learners' servers
    f"--MappingKernelManager.cull_idle_timeout={_seconds('KERNEL_CULL_TIMEOUT', 1200)}",
    "--MappingKernelManager.cull_interval=60",  # kernels with an open tab are never culled
]
if os.geteuid() == 0:  # root: the learners' servers run as root too (see README)
    c.Spawner.args.append("--allow-root")
c.Spawner.mem_limit = _setting("MEM_LIMIT", "3G")
c.Spawner.cpu_limit = float(_setting("CPU_LIMIT", "1"))
c.Spawner.environment = {
    "TUTORIAL_UTILS_CACHE": str(state / "cache"),
    "JUPYTERHUB_ACTIVITY_INTERVAL": str(activity),
}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

# ---- stop idle servers: jupyterhub-idle-culler as a managed service ----------------------------
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={cull_timeout}",
                f"--cull-every={cull_every}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
