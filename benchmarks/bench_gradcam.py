"""Grad-CAM: ``tutorial_utils.cam.grad_cam`` vs captum's ``LayerGradCam`` on ResNet-18.

Both produce the same (B, 224, 224) maps (captum: ``LayerGradCam`` with ReLU, bilinear
``LayerAttribution.interpolate``, then per-image min-max); ours must not be slower. Random
weights (``weights=None``, no download), eval mode, a batch of 4 images at 224x224, default
number of threads, warm-up first, median over interleaved repeats.
Run: ``python benchmarks/bench_gradcam.py``.
"""

from __future__ import annotations

import statistics
import time

import torch
from captum.attr import LayerAttribution, LayerGradCam
from torchvision.models import resnet18

from tutorial_utils.cam import grad_cam
from tutorial_utils.forward import normalize_maps

BATCH, SIZE, REPEATS = 4, 224, 7


def captum_gradcam(model, x, target):
    attr = LayerGradCam(model, model.layer4[-1]).attribute(x, target=target,
                                                           relu_attributions=True)
    up = LayerAttribution.interpolate(attr, (SIZE, SIZE), "bilinear")
    return normalize_maps(torch.relu(up))[:, 0].detach()


def ours(model, x, target):
    return grad_cam(model, x, target)


def main():
    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    with torch.no_grad():
        target = model(x).argmax(1)
    torch.testing.assert_close(ours(model, x, target), captum_gradcam(model, x, target),
                               atol=1e-5, rtol=0)
    fns = {"ours": ours, "captum": captum_gradcam}
    for fn in fns.values():
        fn(model, x, target)  # warm-up
    times = {name: [] for name in fns}
    for _ in range(REPEATS):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(model, x, target)
            times[name].append(time.perf_counter() - start)
    t = {name: statistics.median(v) for name, v in times.items()}
    print(f"{torch.get_num_threads()} thread(s); ResNet-18 (random weights), batch of {BATCH} "
          f"at {SIZE}x{SIZE}, median of {REPEATS}:")
    print(f"  tutorial_utils.cam.grad_cam  {t['ours'] * 1e3:8.1f} ms")
    print(f"  captum LayerGradCam          {t['captum'] * 1e3:8.1f} ms")
    print(f"speed-up ours vs captum: {t['captum'] / t['ours']:.2f}x (target >= 1x); "
          f"maps identical within 1e-5: yes")


if __name__ == "__main__":
    main()
