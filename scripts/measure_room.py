"""Size a room by measurement: what one learner costs, and how Run All slows as learners share.

Starts the workshop hub (``workshop/jupyterhub_config.py``) on free loopback ports with its state
in a temporary folder, then, through simulated learners (``workshop/learners.py``: login form,
Jupyter server REST API, kernel websocket):

1. warms up: fills the shared sign cache and the disk cache (not measured);
2. one learner runs every chapter, each in a fresh kernel: Run All wall time, the kernel's peak
   RSS and CPU seconds (kernel and its children, from ``getrusage`` inside the kernel), and the
   peak RSS of the learner's Jupyter server;
3. one chapter (``--chapter``, default the shortest, 1) at 1, 2 and 4 learners at once
   (``--learners``), ``--repeat`` times interleaved: every learner's Run All time, the median
   and its ratio to one learner.

Every phase also records the CPU seconds that other processes on the machine used meanwhile
(``/proc/stat`` less the hub's process tree); more than 5 % gives a warning that the times are
not valid.

Each learner's kernel runs with the workshop's CPU limit (``--cpu-limit``, default 1 thread;
``--cpu-limit 0`` leaves PyTorch its default, one thread per core) and the workshop's memory
limit (``--mem-limit``, default 3G), so a chapter that needs more stops with ``MemoryError``.
Prints Markdown tables and the rule they imply; ``--json`` also writes the raw numbers. Needs a
quiet machine: anything else using the CPU makes the times invalid. Run from the repository root:

    python scripts/measure_room.py
    python scripts/measure_room.py --chapter 05 --learners 1 2 4 8
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workshop.learners import Hub, Learner  # noqa: E402

RESERVE_GB = 4  # kept free for the OS, the hub, the proxy and page cache (extrapolation)
WARM_UP = ("import torch, matplotlib.pyplot, sklearn, tutorial_utils\n"
           "from tutorial_utils import data, models\n"
           "data.load_signs(); data.load_digits(); models.load('signs')\nprint('warm')")


def _chapters(selected: list[str] | None) -> list[str]:
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not selected:
        return notebooks
    picked = [n for n in notebooks if any(n.startswith(s) for s in selected)]
    if len(picked) != len(selected):
        raise SystemExit(f"--chapters {selected}: not all found in {notebooks}")
    return picked


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process (VmHWM, MB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def _server_pid(hub: Hub, name: str) -> int:
    return int(hub.user(name)["servers"][""]["state"]["pid"])


def _start(hub: Hub, names: list[str]) -> list[Learner]:
    learners = [Learner(hub, name) for name in names]
    with ThreadPoolExecutor(len(learners)) as pool:
        list(pool.map(lambda learner: (learner.login(), learner.spawn()), learners))
    return learners


def _stop(learners: list[Learner]) -> None:
    with ThreadPoolExecutor(len(learners)) as pool:
        list(pool.map(lambda learner: learner.stop_server(), learners))


def _run_at_once(learners: list[Learner], path: str, timeout: float):
    barrier = threading.Barrier(len(learners))

    def run(learner):
        barrier.wait(timeout=120)
        return learner.run_all(path, timeout=timeout, save=False)

    with ThreadPoolExecutor(len(learners)) as pool:
        runs = list(pool.map(run, learners))
    for learner, run in zip(learners, runs, strict=True):
        if run.error:
            raise RuntimeError(f"{learner.name}: {run.error}")
    return runs


class CpuAccount:
    """Who used the CPU between two readings: this script and the hub's process tree ("ours"),
    everything else on the machine ("other"), and the hypervisor ("steal"), in CPU seconds.

    A process that exits is counted through its parent (``children_*`` times), so every
    process the hub started is included as long as someone in the tree reaped it.
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.start = self._read()

    def _read(self) -> tuple[float, float, float]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        busy = (sum(fields[:3]) + sum(fields[5:7])) / self.TICK  # user nice system irq softirq
        steal = (fields[7] if len(fields) > 7 else 0) / self.TICK
        ours = 0.0
        for proc in [psutil.Process(), psutil.Process(self.hub.process.pid),
                     *self.hub.processes()]:
            try:
                t = proc.cpu_times()
                ours += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return busy, steal, ours

    def read(self) -> dict:
        busy, steal, ours = (b - a for a, b in zip(self.start, self._read(), strict=True))
        return {"ours_s": round(ours, 1), "other_s": round(max(busy - ours, 0.0), 1),
                "steal_s": round(steal, 1)}


def measure(args, say) -> dict:
    chapters = _chapters(args.chapters)
    room_chapter = _chapters([args.chapter])[0]
    result = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                          "memory_gb": round(os.sysconf("SC_PAGE_SIZE")
                                             * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
              "cpu_limit": args.cpu_limit, "mem_limit": args.mem_limit}
    try:
        result["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                          capture_output=True, text=True).stdout.strip()
    except OSError:
        result["commit"] = "?"
    with tempfile.TemporaryDirectory(prefix="measure-room-") as folder, Hub(
            Path(folder), mem_limit=args.mem_limit, cpu_limit=args.cpu_limit,
            cull_timeout=24 * 3600) as hub:
        say(f"hub at {hub.url}; warming up")
        (warm,) = _start(hub, ["warmup"])
        out = warm.kernel_python(WARM_UP, timeout=600)
        if "warm" not in out:
            raise RuntimeError(f"warm-up failed: {out}")
        _stop([warm])

        (solo,) = _start(hub, ["solo"])
        result["chapters"] = []
        for name in chapters:
            account = CpuAccount(hub)
            run = solo.run_all(f"notebooks/{name}", timeout=args.timeout, save=False)
            if run.error:
                raise RuntimeError(run.error)
            row = {"chapter": name, "run_all_s": round(run.seconds, 1),
                   "peak_rss_mb": round(run.kernel["peak_rss_mb"]),
                   "cpu_s": round(run.kernel["cpu_seconds"], 1),
                   "threads": run.kernel["torch_threads"], **account.read()}
            result["chapters"].append(row)
            say(f"1 learner, {name}: {row}")
        result["server_peak_rss_mb"] = round(_peak_rss_mb(_server_pid(hub, "solo")))
        _stop([solo])

        result["room"] = {"chapter": room_chapter, "runs": []}
        for repeat in range(args.repeat):  # interleaved: 1, 2, 4, 1, 2, 4, ...
            for n in args.learners:
                learners = _start(hub, [f"room{n}-{repeat}-{i}" for i in range(n)])
                account = CpuAccount(hub)
                runs = _run_at_once(learners, f"notebooks/{room_chapter}", args.timeout)
                times = sorted(round(r.seconds, 1) for r in runs)
                entry = {"learners": n, "repeat": repeat, "run_all_s": times,
                         "median_s": statistics.median(times),
                         "peak_rss_mb": round(max(r.kernel["peak_rss_mb"] for r in runs)),
                         **account.read()}
                result["room"]["runs"].append(entry)
                say(f"{n} learner(s) at once, {room_chapter}: {entry}")
                _stop(learners)
        if hub.leftovers:
            say(f"warning: processes left after the hub stopped: {hub.leftovers}")
    return result


def _by_learners(result: dict) -> dict[int, dict]:
    """Per number of learners: every repeat's median, their median, all times."""
    out = {}
    for run in result["room"]["runs"]:
        entry = out.setdefault(run["learners"], {"medians": [], "times": []})
        entry["medians"].append(run["median_s"])
        entry["times"] += run["run_all_s"]
    for entry in out.values():
        entry["median_s"] = statistics.median(entry["medians"])
    return out


def rule(result: dict) -> dict:
    """What the measurement implies (the 16-core / 64 GB VM is an extrapolation)."""
    cores = result["machine"]["cores"]
    room = _by_learners(result)
    base = room[1]["median_s"]
    within = [n for n, e in room.items() if e["median_s"] <= 2 * base]
    per_core = max(within) / cores
    tested_more = any(n > max(within) for n in room)
    gb = (max(c["peak_rss_mb"] for c in result["chapters"]) + result["server_peak_rss_mb"]) / 1024
    gb = math.ceil(gb * 10) / 10
    return {"base_s": base, "learners_within_2x": max(within), "per_core": per_core,
            "per_core_is_lower_bound": not tested_more, "gb_per_learner": gb,
            "vm16_cpu": int(16 * per_core), "vm64_memory": int((64 - RESERVE_GB) // gb)}


def quiet(result: dict) -> tuple[float, float, float]:
    """Other processes' and steal's share of the machine's CPU time while measuring, and the
    measured wall time (seconds)."""
    phases = result["chapters"] + result["room"]["runs"]
    wall = sum(p["run_all_s"] if "chapter" in p else max(p["run_all_s"]) for p in phases)
    total = wall * result["machine"]["cores"]
    return (sum(p["other_s"] for p in phases) / total, sum(p["steal_s"] for p in phases) / total,
            wall)


def markdown(result: dict) -> str:
    m, r = result["machine"], rule(result)
    threads = "PyTorch's default threads" if not result["cpu_limit"] else (
        f"{int(math.ceil(result['cpu_limit']))} thread(s) per kernel")
    other, steal, _ = quiet(result)
    lines = [f"Measured on {m['cores']} cores / {m['memory_gb']} GB, Python {m['python']}, commit "
             f"{result['commit']}, {threads}, through the workshop hub "
             f"(`python scripts/measure_room.py`); other processes used {other:.1%} and the "
             f"hypervisor took {steal:.1%} of the CPU time meanwhile.", "",
             "| chapter | Run All, 1 learner (s) | kernel peak RSS (MB) | kernel CPU (s) |",
             "|---|---:|---:|---:|"]
    for c in result["chapters"]:
        lines.append(f"| `{c['chapter']}` | {c['run_all_s']:.1f} | {c['peak_rss_mb']} | "
                     f"{c['cpu_s']:.1f} |")
    room = _by_learners(result)
    repeats = max(len(e["medians"]) for e in room.values())
    lines += ["", f"Each learner's Jupyter server: peak RSS {result['server_peak_rss_mb']} MB.", "",
              f"| learners running `{result['room']['chapter']}` at once | Run All, median of "
              f"the learners, each of {repeats} repeat(s) (s) | median (s) | × 1 learner |",
              "|---:|---|---:|---:|"]
    for n, e in sorted(room.items()):
        lines.append(f"| {n} | {', '.join(f'{t:.1f}' for t in e['medians'])} | "
                     f"{e['median_s']:.1f} | {e['median_s'] / r['base_s']:.2f} |")
    bound = " (the most tested; more may fit)" if r["per_core_is_lower_bound"] else ""
    lines += ["",
              f"* Learners per core at ≤ 2× the single-learner Run All: "
              f"{r['learners_within_2x']} learner(s) on {m['cores']} cores = "
              f"**{r['per_core']:g} per core**{bound}, everyone pressing Run All at the same "
              f"moment.",
              f"* Memory per learner: largest kernel peak + server = **{r['gb_per_learner']} GB**"
              f" (one open chapter; each further open chapter adds its kernel).",
              f"* A 16-core / 64 GB VM (*extrapolated*, not measured): CPU allows "
              f"{r['vm16_cpu']}, memory allows {r['vm64_memory']} (keeping {RESERVE_GB} GB for the "
              f"system) → **{min(r['vm16_cpu'], r['vm64_memory'])} learners**."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", nargs="*", help="chapters to measure one by one "
                        "(prefixes such as 01 03; default all)")
    parser.add_argument("--chapter", default="01", help="chapter run by several learners at "
                        "once (prefix, default 01)")
    parser.add_argument("--learners", nargs="+", type=int, default=[1, 2, 4],
                        help="numbers of learners at once (default 1 2 4; must include 1)")
    parser.add_argument("--cpu-limit", type=float, default=1.0,
                        help="threads per kernel (0: PyTorch's default)")
    parser.add_argument("--mem-limit", default="3G",
                        help="memory limit per process (default 3G, the workshop's)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="repeats of the learners-at-once runs (default 3, interleaved)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per Run All")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--from-json", type=Path, help="print the tables of a saved --json "
                        "file instead of measuring")
    args = parser.parse_args(argv)
    if 1 not in args.learners or min(args.learners) < 1:
        parser.error("--learners must include 1 and be positive")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.learners = sorted(set(args.learners))
    say = (lambda line: print(line, file=sys.stderr, flush=True))  # noqa: E731
    if args.from_json:
        print(markdown(json.loads(args.from_json.read_text())))
        return
    result = measure(args, say)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    other, steal, wall = quiet(result)
    if other > 0.05:
        say(f"WARNING: other processes used {other:.0%} of the CPU during the {wall:.0f} s "
            f"measured; the times are not valid: measure on a quiet machine")
    print(markdown(result))


if __name__ == "__main__":
    main()
