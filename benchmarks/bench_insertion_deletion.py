"""Batched insertion + deletion curves vs a loop with one forward pass per step.

The batched path (``tutorial_utils.evaluation``) builds all B·(S+1) perturbed images lazily and
evaluates them ``batch_size`` at a time. Two loop references, both with ``torch.no_grad``:

- **per step**: one forward per step over the whole batch of B images (S+1 forwards per curve);
- **per image and step**: the naive reference, one image and one step per forward.

Run: ``python benchmarks/bench_insertion_deletion.py`` (prints the ratios of one run and
asserts that all curves are identical).
"""

from __future__ import annotations

import argparse
import time

import torch

from tutorial_utils import evaluation as E
from tutorial_utils import forward as F
from tutorial_utils.architectures import SmallCNN


def loop_curve(model, x, sal, classes, steps, start, end, per_image: bool) -> torch.Tensor:
    """Probabilities (B, S+1): pixels moved from ``start`` to ``end`` in saliency order."""
    b, _, h, w = x.shape
    ranks = F.pixel_ranks(sal).view(b, 1, h, w)
    rows = []
    with torch.no_grad():
        for k in range(steps + 1):
            images = torch.where(ranks < k * h * w // steps, end, start)
            chunks = images.split(1) if per_image else (images,)
            logits = torch.cat([model(c) for c in chunks])
            rows.append(logits.softmax(1).gather(1, classes[:, None])[:, 0])
    return torch.stack(rows, dim=1)


def loop_both(model, x, sal, steps, per_image: bool) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        classes = model(x).argmax(1)
    blurred = F.baseline_image(x, "blur")
    deletion = loop_curve(model, x, sal, classes, steps, x, torch.zeros_like(x), per_image)
    insertion = loop_curve(model, x, sal, classes, steps, blurred, x, per_image)
    return deletion, insertion


def batched_both(model, x, sal, steps, batch_size) -> tuple[torch.Tensor, torch.Tensor]:
    deletion = E.deletion_curve(model, x, sal, steps=steps, batch_size=batch_size)
    insertion = E.insertion_curve(model, x, sal, steps=steps, batch_size=batch_size)
    return deletion.probs, insertion.probs


def interleaved_best(fns: dict, repeats: int, sync) -> tuple[dict, dict]:
    """Best-of-``repeats`` wall time of every function, runs interleaved (fair under load)."""
    best, outs = {k: float("inf") for k in fns}, {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            outs[name] = fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, outs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=E.DEFAULT_BATCH_SIZE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval().to(args.device)
    x = torch.rand(args.images, 3, 48, 48, device=args.device)
    sal = torch.rand(args.images, 48, 48, device=args.device)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    batched_both(model, x, sal, 2, args.batch_size)  # warm-up
    times, outs = interleaved_best({
        "batched": lambda: batched_both(model, x, sal, args.steps, args.batch_size),
        "per step": lambda: loop_both(model, x, sal, args.steps, per_image=False),
        "per image and step": lambda: loop_both(model, x, sal, args.steps, per_image=True),
    }, args.repeats, sync)
    d_b, i_b = outs["batched"]
    for name in ("per step", "per image and step"):
        d, i = outs[name]
        torch.testing.assert_close(d_b, d, atol=1e-6, rtol=1e-5, msg=f"deletion vs {name}")
        torch.testing.assert_close(i_b, i, atol=1e-6, rtol=1e-5, msg=f"insertion vs {name}")
    t_batch, t_step, t_img = times["batched"], times["per step"], times["per image and step"]

    n = args.images * (args.steps + 1) * 2
    print(f"SmallCNN(3, 14), {args.images} images 48x48, {args.steps} steps, deletion + "
          f"insertion = {n} forward images on {args.device} ({torch.get_num_threads()} threads)")
    print(f"batched (batch_size={args.batch_size}): {t_batch * 1e3:8.1f} ms")
    print(f"loop, one forward per step:        {t_step * 1e3:8.1f} ms   "
          f"ratio {t_step / t_batch:5.1f}x")
    print(f"loop, one forward per image+step:  {t_img * 1e3:8.1f} ms   "
          f"ratio {t_img / t_batch:5.1f}x")
    print("curves identical (atol 1e-6): yes")


if __name__ == "__main__":
    main()
