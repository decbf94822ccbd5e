"""Confounding-label gradient norms: batched per-sample gradients vs a loop.

Per-sample, per-layer ‖∇_θ L(f(x), 1)‖² for the all-ones label on 64 test signs and the zoo's
``signs`` model: :func:`tutorial_utils.gradients.confounding_gradient_norms` by its default
path (``method="hooks"``: one forward, one backward to the layer outputs, per-sample weight
gradients from one grouped weight-gradient call per convolution), by ``method="vmap"``
(``torch.func``), and the loop one writes otherwise — one ``loss.backward()`` per image and
the norms read from ``p.grad``. Results are checked equal before timing (a trained model: an
untrained one has near-ties in max pooling, where a 1e-7 difference in the forward pass may
route a gradient to the other pixel — both are valid subgradients).

Measured twice: with PyTorch's default number of threads (what a notebook gets) and with one
thread. Both methods do the same arithmetic (a per-sample weight gradient costs what the
weight-gradient part of an ordinary backward costs), so once a batch-1 pass is compute-bound
the loop loses only its per-call overhead; the gap is largest where that overhead dominates
(several threads on tiny batch-1 kernels, busy machines). Set ``BENCH_THREADS`` to measure
one configuration only. Run: ``python benchmarks/bench_confounding_norms.py``.
"""

from __future__ import annotations

import os

import torch
from _timing import medians, timings

from tutorial_utils import data, models
from tutorial_utils.gradients import confounding_gradient_norms, confounding_loss

BATCH, REPEATS = 64, 5


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


def run(model, x, losses):
    print(f"{torch.get_num_threads()} thread(s); zoo 'signs' model, batch of {BATCH} test "
          f"signs, per-sample squared gradient norms of every layer")
    for loss in losses:
        out = confounding_gradient_norms(model, x, loss)
        ref = per_sample_loop(model, x, out.names, loss)
        vmapped = confounding_gradient_norms(model, x, loss, method="vmap").norms
        for norms in (out.norms, vmapped):
            torch.testing.assert_close(norms, ref, rtol=1e-4, atol=1e-10)
        t = medians(timings({
            "hooks": lambda loss=loss: confounding_gradient_norms(model, x, loss),
            "vmap": lambda loss=loss: confounding_gradient_norms(model, x, loss, method="vmap"),
            "loop": lambda loss=loss, names=out.names: per_sample_loop(model, x, names, loss),
        }, REPEATS))
        print(f"  loss={loss:7s}: hooks {t['hooks'] * 1e3:6.1f} ms, torch.func "
              f"{t['vmap'] * 1e3:6.1f} ms, per-sample loop {t['loop'] * 1e3:6.1f} ms -> "
              f"loop / hooks {t['loop'] / t['hooks']:.1f}x (target >= 5x), vmap / hooks "
              f"{t['vmap'] / t['hooks']:.2f}x; all three equal within rtol 1e-4: yes")


def main():
    model = models.load("signs", train_if_missing=False)
    test = data.load_signs().x_test
    x = test[torch.linspace(0, len(test) - 1, BATCH).long()]
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
