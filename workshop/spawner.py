"""The one-machine spawner of the workshop hub: every learner's server is a local process.

:class:`CourseSpawner` extends JupyterHub's ``SimpleLocalProcessSpawner``: all learners' servers
run as the hub's own Unix user, each in its own home folder ``<WORKSHOP_DIR>/home/<name>``
(``HOME``, working directory and Jupyter root), with the course's one shared environment
(``sys.executable``, the interpreter that runs the hub).

What it enforces, and what it does not:

* **Memory** — ``mem_limit`` (bytes) becomes ``RLIMIT_DATA`` (private writable memory: heap and
  anonymous mappings, which is where tensors live) of the learner's server, inherited by each of
  its kernels. A kernel that goes past it gets ``MemoryError``; the hub and the other learners
  keep running. It is a limit *per process*: a learner with three kernels may use three times it
  (the kernel culler below shuts kernels whose tab was closed).
* **CPU** — ``cpu_limit`` sets ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` (rounded up, at least 1),
  so one learner's PyTorch uses that many threads instead of one per core of the machine. It is
  not a quota: only cgroups enforce one (TLJH's SystemdSpawner, Kubernetes).
* **Files** — one Unix user: the hub keeps learners apart (each learner's token and cookie reach
  only their own server; see ``tests/test_hub.py``), but code in one learner's kernel can read
  another's files. For that separation use TLJH or Zero to JupyterHub (README, "For presenters:
  a room of learners").
"""

from __future__ import annotations

import math
import os
import resource
import shutil
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode

COURSE = Path(__file__).resolve().parents[1]


def copy_course_notebooks(spawner) -> None:
    """``pre_spawn_hook``: on a learner's first login, copy ``notebooks/`` into their home.

    An existing ``~/notebooks`` is left alone (the learner's edits survive a restart). The copy
    goes through a temporary folder and a rename, so a spawn interrupted half-way leaves no
    half-filled folder behind that would block the next try.
    """
    home = Path(spawner.home_dir)
    target = home / spawner.notebooks_folder
    if target.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    staging = home / f".{spawner.notebooks_folder}.copying"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(COURSE / "notebooks", staging,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.slides.html"))
    os.replace(staging, target)
    spawner.log.info("copied the course notebooks to %s", target)


class CourseSpawner(SimpleLocalProcessSpawner):
    """A learner's server as a local process: own home, shared course environment, limits."""

    notebooks_folder = Unicode("notebooks", config=True,
                               help="Folder in each learner's home that receives the copy.")

    def make_preexec_fn(self, name):
        parent = super().make_preexec_fn(name)  # creates and enters the learner's home
        limit = int(self.mem_limit) if self.mem_limit else None

        def preexec():
            parent()
            if limit:
                resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

        return preexec

    def get_env(self):
        env = super().get_env()
        if self.cpu_limit:
            threads = str(max(1, math.ceil(self.cpu_limit)))
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
        return env
