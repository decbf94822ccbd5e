"""All-class contrast gradients: closed form ``(p − e_q) hᵀ`` vs per-class backward loops.

The reference loop is what one writes without the identity ``∂CE/∂z = p − e_q``::

    for each image i, for each contrast class q:
        model.zero_grad(); F.cross_entropy(model(x[i:i+1]), q).backward(); g[i, q] = fc.weight.grad

(a backward sums over the batch, so per-sample gradients need one image at a time). Two
smarter loops are reported for information: one forward per image with
``backward(retain_graph=True)`` per class, and ``torch.autograd.grad`` to ``fc.weight`` only.
Times are per image (the closed form runs on a batch of 64, the loops on its first 8 images).
Single-threaded by default (``BENCH_THREADS`` overrides): on a shared 2-core machine OpenMP
threads competing with other jobs make batched kernels several times slower.
Run: ``python benchmarks/bench_contrast_gradients.py``.
"""

from __future__ import annotations

import os
import statistics
import time

import torch
import torch.nn.functional as F

from tutorial_utils.architectures import SmallCNN
from tutorial_utils.gradients import contrast_gradients, contrast_gradients_autograd

K, BATCH, LOOP_BATCH, SIZE = 14, 64, 8, 48


def per_class_backward_loop(model, x):
    """(B, K, K, D) by one forward and one ``loss.backward()`` per (image, class)."""
    out = torch.empty(len(x), K, K, model.fc.in_features)
    for i in range(len(x)):
        for q in range(K):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[i:i + 1]), torch.tensor([q])).backward()
            out[i, q] = model.fc.weight.grad
    model.zero_grad(set_to_none=True)
    return out


def retain_graph_loop(model, x):
    """(B, K, K, D) by one forward per image and ``backward(retain_graph=True)`` per class."""
    out = torch.empty(len(x), K, K, model.fc.in_features)
    for i in range(len(x)):
        z = model(x[i:i + 1])
        for q in range(K):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(z, torch.tensor([q])).backward(retain_graph=q < K - 1)
            out[i, q] = model.fc.weight.grad
    model.zero_grad(set_to_none=True)
    return out


def reuse_forward_loop(model, x):
    """(B, K, K, D) by ``autograd.grad`` to ``fc.weight`` only, one forward per image."""
    out = torch.empty(len(x), K, K, model.fc.in_features)
    for i in range(len(x)):
        z = model(x[i:i + 1])
        for q in range(K):
            (out[i, q],) = torch.autograd.grad(F.cross_entropy(z, torch.tensor([q])),
                                               model.fc.weight, retain_graph=q < K - 1)
    return out


def median_time(fn, repeats, warmup=True):
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    torch.manual_seed(0)
    model = SmallCNN(3, K).eval()
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    xl = x[:LOOP_BATCH]

    closed = contrast_gradients(model, x)
    torch.testing.assert_close(closed[:LOOP_BATCH], per_class_backward_loop(model, xl),
                               atol=1e-5, rtol=1e-5)
    for loop in (retain_graph_loop, reuse_forward_loop):
        torch.testing.assert_close(closed[:LOOP_BATCH], loop(model, xl), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(closed, contrast_gradients_autograd(model, x)["fc.weight"],
                               atol=1e-5, rtol=1e-5)

    t_closed = median_time(lambda: contrast_gradients(model, x), 15) / BATCH
    t_func = median_time(lambda: contrast_gradients_autograd(model, x), 5) / BATCH
    # the loops were warmed up by the correctness checks above
    t_loop = median_time(lambda: per_class_backward_loop(model, xl), 3, False) / LOOP_BATCH
    t_retain = median_time(lambda: retain_graph_loop(model, xl), 3, False) / LOOP_BATCH
    t_reuse = median_time(lambda: reuse_forward_loop(model, xl), 3, False) / LOOP_BATCH
    print(f"{torch.get_num_threads()} thread(s); SmallCNN(3, {K}), {SIZE}x{SIZE} inputs, "
          f"all {K} contrast classes; time per image (closed form on a batch of {BATCH}, "
          f"loops on {LOOP_BATCH}):")
    print(f"  closed form (p − e_q) hᵀ        {t_closed * 1e3:8.3f} ms")
    print(f"  torch.func vjp + vmap          {t_func * 1e3:8.3f} ms")
    print(f"  per-class backward loop        {t_loop * 1e3:8.3f} ms")
    print(f"  loop, forward reused           {t_retain * 1e3:8.3f} ms")
    print(f"  loop, autograd.grad to fc only {t_reuse * 1e3:8.3f} ms")
    ratio = t_loop / t_closed
    print(f"speed-up closed form vs per-class backward loop: {ratio:.0f}x (target >= 50x)")
    print(f"speed-up closed form vs loop with the forward reused: {t_retain / t_closed:.0f}x")
    print(f"speed-up closed form vs autograd.grad-to-fc loop: {t_reuse / t_closed:.1f}x")
    print(f"speed-up torch.func path vs per-class backward loop: {t_loop / t_func:.0f}x")
    print("results identical within 1e-5: yes")


if __name__ == "__main__":
    main()
