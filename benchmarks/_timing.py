"""Timing helpers shared by the benchmarks: interleaved repeats, medians, paired ratios."""

from __future__ import annotations

import statistics
import time


def timings(fns: dict, repeats: int) -> dict:
    """Wall times (s) of every function per repeat, after one warm-up call each; the calls
    are interleaved, so a drift in the machine's load hits every function alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def medians(times: dict) -> dict:
    """Median wall time (s) of each function."""
    return {name: statistics.median(t) for name, t in times.items()}


def paired_ratio(num: list, den: list) -> float:
    """Median over repeats of num/den measured back to back (robust to load drifts)."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))
