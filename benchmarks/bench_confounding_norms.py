"""Confounding-label gradient norms: batched per-sample gradients (torch.func) vs a loop.

Per-sample, per-layer ‖∇_θ L(f(x), 1)‖² for the all-ones label on a batch of 64 signs-sized
images: :func:`tutorial_utils.gradients.confounding_gradient_norms` (``vmap(grad(·))`` with
``functional_call``, one vectorised pass) against the loop one writes otherwise — one
``loss.backward()`` per image and the norms read from ``p.grad``.

Measured twice: with PyTorch's default number of threads (what a notebook gets) and with one
thread. Both methods do the same arithmetic (a per-sample weight gradient costs what the
weight-gradient part of an ordinary backward costs), so once a batch-1 pass is compute-bound
the loop loses only its per-call overhead; the gap is largest where that overhead dominates
(several threads on tiny batch-1 kernels, busy machines). Set ``BENCH_THREADS`` to measure
one configuration only. Run: ``python benchmarks/bench_confounding_norms.py``.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from tutorial_utils.architectures import SmallCNN
from tutorial_utils.gradients import confounding_gradient_norms, confounding_loss

K, BATCH, SIZE, REPEATS = 14, 64, 48, 5


def per_sample_loop(model, x, names, loss):
    """(B, L) norms by one backward per image."""
    modules = [model.get_submodule(n) for n in names]
    rows = []
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        confounding_loss(model(x[i:i + 1]), loss).sum().backward()
        rows.append(torch.stack([sum(p.grad.square().sum() for p in m.parameters(recurse=False))
                                 for m in modules]))
    model.zero_grad(set_to_none=True)
    return torch.stack(rows)


def interleaved_medians(fns, repeats):
    """Median time of each function, calls interleaved so that load drifts hit all alike."""
    for fn in fns.values():
        fn()  # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def run(model, x, losses):
    print(f"{torch.get_num_threads()} thread(s); SmallCNN(3, {K}), batch of {BATCH} "
          f"{SIZE}x{SIZE} images, per-sample squared gradient norms of every layer")
    for loss in losses:
        out = confounding_gradient_norms(model, x, loss)
        ref = per_sample_loop(model, x, out.names, loss)
        torch.testing.assert_close(out.norms, ref, rtol=1e-4, atol=1e-10)
        t = interleaved_medians({
            "batched": lambda loss=loss: confounding_gradient_norms(model, x, loss),
            "loop": lambda loss=loss, names=out.names: per_sample_loop(model, x, names, loss),
        }, REPEATS)
        print(f"  loss={loss:7s}: torch.func {t['batched'] * 1e3:7.1f} ms, "
              f"per-sample loop {t['loop'] * 1e3:7.1f} ms -> "
              f"speed-up {t['loop'] / t['batched']:.1f}x (target >= 5x); "
              f"identical within rtol 1e-4: yes")


def main():
    torch.manual_seed(0)
    model = SmallCNN(3, K).eval()
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    if "BENCH_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
        run(model, x, ("sigmoid", "softmax"))
        return
    run(model, x, ("sigmoid", "softmax"))
    if torch.get_num_threads() > 1:
        torch.set_num_threads(1)
        run(model, x, ("sigmoid",))


if __name__ == "__main__":
    main()
