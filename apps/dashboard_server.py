"""Serve the dashboard app (``dashboard.ipynb`` beside this file) with voila, set up for a room:

    python apps/dashboard_server.py                 # http://localhost:8866
    python apps/dashboard_server.py --port=8000 --Voila.ip=0.0.0.0   # any voila option

* A kernel is pre-started and has already run the notebook when a visitor arrives (the first
  picture shows in about 2 s instead of the 7-10 s the notebook takes), and the next one is
  started as soon as it is taken (``preheat_kernel``, a pool of one).
* A visitor's kernel is stopped after 10 minutes without activity, even while the page is
  still open (``cull_connected``): a room of visitors does not keep a kernel each until voila
  stops. A visitor coming back after that reloads the page.
* Handing a pre-started kernel to a visitor counts as activity. voila does not cull kernels
  waiting in the pool, but their idle time keeps running there: without this, a kernel that
  waited longer than the timeout would be culled in the seconds between its hand-out and the
  page's first message, and the visitor would get a dead page.
"""

import os
import sys
from pathlib import Path

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets.config import Config

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "dashboard.ipynb"


class HandOutIsActivity(AsyncMappingKernelManager):
    """voila's pooled kernel manager is built on this class: a kernel seen waiting in the pool
    at one culling pass gets a fresh ``last_activity`` at the first pass after it left it."""

    _pooled: set
    _handed_out: set

    def _note_pooled(self) -> set:
        pooled = set()
        for pool in getattr(self, "_pools", {}).values():
            for future in pool:
                if future.done() and not future.cancelled() and future.exception() is None:
                    pooled.add(future.result().get("kernel_id"))
        return pooled

    async def cull_kernels(self):
        if not hasattr(self, "_pooled"):
            self._pooled, self._handed_out = set(), set()
        self._pooled |= self._note_pooled()
        return await super().cull_kernels()

    async def cull_kernel_if_idle(self, kernel_id):
        pooled = getattr(self, "_pooled", set())
        if kernel_id in pooled and kernel_id not in self._handed_out:
            if kernel_id not in self._note_pooled():  # it left the pool since the last pass
                self._handed_out.add(kernel_id)
                kernel = self.get_kernel(kernel_id)
                kernel.last_activity = utcnow()
                return None
        return await super().cull_kernel_if_idle(kernel_id)


def config() -> Config:
    """The room's settings; options given on the command line override them."""
    c = Config()
    c.VoilaConfiguration.multi_kernel_manager_class = HandOutIsActivity
    c.VoilaConfiguration.preheat_kernel = True
    c.VoilaConfiguration.default_pool_size = 1
    c.VoilaConfiguration.show_tracebacks = False
    # the page needs the widget managers only (other JupyterLab extensions, e.g. the deck
    # mode, fail to load outside JupyterLab and slow the page down)
    c.VoilaConfiguration.extension_allowlist = ["@jupyter-widgets/jupyterlab-manager",
                                                "@voila-dashboards/widgets-manager8"]
    c.MappingKernelManager.cull_idle_timeout = 600  # seconds without activity
    c.MappingKernelManager.cull_interval = 60
    c.MappingKernelManager.cull_connected = True
    return c


def main(argv: list[str]) -> None:
    from voila.app import Voila

    os.chdir(HERE)  # the kernels start here, next to the notebook
    app = Voila(config=config())
    app.initialize([NOTEBOOK.name, "--no-browser", *argv])
    app.start()


if __name__ == "__main__":
    main(sys.argv[1:])
