"""The course on a JupyterHub for a room: ``jupyterhub -f workshop/jupyterhub_config.py``.

* :mod:`workshop.spawner` — the one-machine spawner: a home folder and a copy of ``notebooks/``
  per learner, a per-process memory limit, thread counts from the CPU limit.
* :mod:`workshop.learners` — simulated learners for the tests and the sizing script: start the
  hub, log in, spawn, Run All through the Jupyter server REST and kernel websocket APIs.
* ``jupyterhub_config.py`` (settings from ``WORKSHOP_*`` environment variables, listed there) and
  ``values.yaml`` (Zero to JupyterHub on Kubernetes; documented, not tested here).
"""
