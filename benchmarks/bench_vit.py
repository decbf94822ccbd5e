"""The zoo's vision transformer ``signs-vit``: Grad-CAM and GradNorm, ours / limit and peer / ours.

Batch of 64 signs test images (48x48), the zoo's ``signs-vit`` (SignViT, 6x6 patch tokens) in
eval mode, default number of threads, warm-up first, medians of interleaved repeats. The
*limit* of a method is the cheapest computation any implementation must do:

- Grad-CAM on the token grid (``blocks[-1].norm1``, reshaped by ``tokens_to_map``): one
  forward that keeps the target layer's output (a forward hook) and one backward of the
  summed target logits to that output (parameters frozen) — the map itself is a cheap
  weighted sum on the 6x6 grid. Peer: pytorch-grad-cam's ``GradCAM`` with
  ``reshape_transform=tokens_to_map`` (checked equal to ours to 1e-5 first).
- GradNorm (closed form ``‖p − u‖₁‖h‖₁``): one batched forward (``inference_mode``). Peer:
  pytorch-ood's ``GradNorm`` restricted to ``fc.weight`` (per-sample backward passes; checked
  equal to ours, sign flipped).

Targets: ours / limit ≤ 1.5 for Grad-CAM, ≤ 1.2 for GradNorm; never slower than the peer
(peer / ours ≥ 1). Ratios are medians of back-to-back ratios over the repeats.
Run: ``python benchmarks/bench_vit.py``.
"""

from __future__ import annotations

import copy

import torch
from _timing import medians, paired_ratio, timings

from tutorial_utils import data, models
from tutorial_utils import uncertainty as U
from tutorial_utils.cam import grad_cam

BATCH, REPEATS = 64, 9


def gradcam_limit(model, x, target):
    """One forward keeping the target layer's output + one backward of the target logits to it."""
    store = {}

    def keep(_module, _args, output):
        store["a"] = output.detach().requires_grad_(True)  # the leaf the backward stops at
        return store["a"]

    handle = model.target_layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            z = model(x)
            (g,) = torch.autograd.grad(z.gather(1, target[:, None]).sum(), store["a"])
    finally:
        handle.remove()
    return g


def gradnorm_limit(model, x):
    with torch.inference_mode():
        return model(x)


def peers(model):
    """pytorch-grad-cam and pytorch-ood, or {} for those not installed."""
    out = {}
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        peer_model = copy.deepcopy(model)
        cam = GradCAM(model=peer_model, target_layers=[peer_model.target_layer],
                      reshape_transform=peer_model.tokens_to_map)

        def peer_cam(x, target):
            return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k))
                                                                 for k in target]))
        out["Grad-CAM"] = peer_cam
    except ImportError:
        pass
    try:
        from pytorch_ood import detector as D

        gn = D.GradNorm(model, lambda n: n == "fc.weight")
        out["GradNorm"] = lambda x, _target: -gn.predict(x)
    except ImportError:
        pass
    return out


def main():
    model = models.load("signs-vit", train_if_missing=False)
    ds = data.load_signs()
    x = ds.x_test[torch.linspace(0, len(ds.x_test) - 1, BATCH).long()]
    target = models.predict_logits(model, x).argmax(1)
    ours = {"Grad-CAM": lambda: grad_cam(model, x, target),
            "GradNorm": lambda: U.gradnorm(model, x)}
    params = list(model.parameters())
    limits = {"Grad-CAM": ("fwd + layer bwd", lambda: gradcam_limit(model, x, target)),
              "GradNorm": ("forward", lambda: gradnorm_limit(model, x))}
    targets = {"Grad-CAM": 1.5, "GradNorm": 1.2}
    peer = peers(model)
    for name, fn in ours.items():
        if name in peer:
            torch.testing.assert_close(fn(), peer[name](x, target).detach().float(),
                                       rtol=1e-4, atol=1e-5)
    print(f"{torch.get_num_threads()} thread(s); zoo 'signs-vit' (SignViT, 4 blocks, 6x6 tokens), "
          f"batch of {BATCH} signs test images 48x48; ms = medians, ratios = medians of "
          f"back-to-back ratios over {REPEATS} interleaved repeats")
    print(f"  {'method':10s} {'ours ms':>8s} {'limit':>16s} {'ms':>7s} {'ours/limit':>10s} "
          f"{'target':>6s} {'peer ms':>8s} {'peer/ours':>9s}")
    for name, fn in ours.items():
        limit_name, limit = limits[name]
        fns = {"ours": fn, "limit": limit}
        if name in peer:
            fns["peer"] = lambda name=name: peer[name](x, target)
        for p in params:  # Grad-CAM's limit backward goes to the layer output only
            p.requires_grad_(name != "Grad-CAM")
        try:
            raw = timings(fns, REPEATS)
        finally:
            for p in params:
                p.requires_grad_(True)
        t = medians(raw)
        ratio = paired_ratio(raw["ours"], raw["limit"])
        peer_cols = (f"{t['peer'] * 1e3:8.1f} {paired_ratio(raw['peer'], raw['ours']):8.2f}x"
                     if "peer" in t else f"{'-':>8s} {'-':>9s}")
        flag = "" if ratio <= targets[name] else "  <- above target"
        print(f"  {name:10s} {t['ours'] * 1e3:8.1f} {limit_name:>16s} {t['limit'] * 1e3:7.1f} "
              f"{ratio:10.2f} {targets[name]:6.1f} {peer_cols}{flag}")
    print("results equal to the peers (pytorch-grad-cam with reshape; pytorch-ood, sign "
          "flipped) where listed: yes")


if __name__ == "__main__":
    main()
