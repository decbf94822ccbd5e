# The Littlest JupyterHub (TLJH), one VM, one Unix user per learner: the course's additions.
# DOCUMENTED, NOT TESTED HERE (TLJH needs a whole VM with systemd as PID 1 and root).
#
# Copy to /opt/tljh/config/jupyterhub_config.d/course.py, then `sudo tljh-config reload`.
# TLJH's SystemdSpawner enforces `tljh-config set limits.memory 3G` (cgroup MemoryMax) and
# `limits.cpu 1` (CPUQuota); its idle culler is `services.cull.timeout`. Steps: README,
# "For presenters: a room of learners".
c = get_config()  # noqa: F821

c.Spawner.default_url = "/lab/tree/notebooks"
c.Spawner.environment.update({
    "OMP_NUM_THREADS": "1",  # match limits.cpu: one PyTorch thread per learner kernel
    "MKL_NUM_THREADS": "1",
    "TUTORIAL_UTILS_CACHE": "/srv/gradients-cache",  # filled once by the presenter, read-only
})
c.Spawner.args = ["--MappingKernelManager.cull_idle_timeout=1200",  # kernels of closed tabs
                  "--MappingKernelManager.cull_interval=60",
                  "--LabApp.extension_manager=readonly"]
