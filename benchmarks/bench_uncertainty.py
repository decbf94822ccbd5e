"""Uncertainty scores on the zoo sign model: ours / limit, and pytorch-ood / ours.

Batch of 64 signs test images (48x48), the zoo's ``signs`` SmallCNN in eval mode, default number
of threads, warm-up first, median of interleaved repeats. The *limit* of a score is the cheapest
computation any implementation must do:

- logit and feature scores (MSP, Energy, Mahalanobis, GradNorm's closed form): one batched
  forward pass (``inference_mode``, channels-last — the fastest plain forward we know);
- ODIN: one forward + one backward to the input (parameters frozen), then one plain forward of
  the perturbed input — the score is read from that second pass, so no ODIN can skip it;
- confounding-label norms: one forward + one ordinary batched backward to the selected
  parameters (a *summed* gradient; per-sample norms cannot be cheaper than that).

Targets: ours / limit ≤ 1.2 for logit scores, ≤ 1.5 for gradient scores; never slower than
pytorch-ood (peer / ours ≥ 1). Ratios are medians over repeats of back-to-back ratios, which
cancel most of the drift of a shared machine's load. Every peer result is checked equal to ours
(pytorch-ood's sign is flipped: higher = more OOD) before timing.
Run: ``python benchmarks/bench_uncertainty.py``.
"""

from __future__ import annotations

import torch
from _timing import medians, paired_ratio, timings
from torch import nn

from tutorial_utils import data, detection, models
from tutorial_utils import uncertainty as U
from tutorial_utils.gradients import confounding_loss
from tutorial_utils.utils import channels_last

BATCH, REPEATS = 64, 15


def forward_limit(model, x):
    with torch.inference_mode():
        return model(channels_last(x))


def input_backward_limit(model, x):
    """One forward + one backward to the input (the parameters are frozen by the caller)."""
    xg = channels_last(x).requires_grad_(True)
    return torch.autograd.grad(model(xg).logsumexp(1).sum(), xg)[0]


def odin_limit(model, x):
    """One forward + one backward to the input, then one forward of the perturbed input."""
    x_shifted = (x - 0.001 * input_backward_limit(model, x).sign()).clamp(0, 1)
    return forward_limit(model, x_shifted)


def param_backward_limit(model, x, params):
    """One forward + one batched backward of the summed confounding loss to ``params``."""
    return torch.autograd.grad(confounding_loss(model(channels_last(x)), "softmax").sum(), params)


class ClampSTE(nn.Module):
    """Clamp to [0, 1] forward, identity backward: makes pytorch-ood's ODIN clamp like ours."""

    def forward(self, x):
        return x + (x.clamp(0, 1) - x).detach()


def peers(model, x_fit, y_fit):
    """pytorch-ood detectors (scores negated to "higher = in-distribution"), or {}."""
    try:
        from pytorch_ood import detector as D
    except ImportError:
        return {}
    maha = D.Mahalanobis(model.penultimate)
    maha.fit_features(models.features_and_logits(model, x_fit)[0], y_fit)
    n_fit = len(x_fit)

    def nograd(fn):
        def run(x):
            with torch.no_grad():
                return fn(x)
        return run

    return {
        "msp": nograd(lambda x: -D.MaxSoftmax(model).predict(x)),
        "energy": nograd(lambda x: -D.EnergyBased(model).predict(x)),
        # pytorch-ood: ½·d² with an un-normalised covariance = ours / (2N)
        "mahalanobis": nograd(lambda x: -maha.predict(x) * 2 * n_fit),
        "gradnorm": lambda x: -D.GradNorm(model, lambda n: n == "fc.weight").predict(x),
        "odin": lambda x: -D.ODIN(nn.Sequential(ClampSTE(), model).eval()).predict(x),
        "confounding (fc)": lambda x: D.GradUncertainty(model, lambda n: n.startswith("fc.")
                                                        ).predict(x),
        "confounding (all)": lambda x: D.GradUncertainty(model).predict(x),
    }


def main():
    model = models.load("signs", train_if_missing=False)
    ds = data.load_signs()
    x = ds.x_test[torch.linspace(0, len(ds.x_test) - 1, BATCH).long()]
    maha = U.Mahalanobis(model).fit(ds.x_train, ds.y_train)
    params_fc = list(model.fc.parameters())
    params_all = list(model.parameters())
    msp, energy = detection.SCORES["MSP"](model), detection.SCORES["Energy"](model)
    ours = {
        "msp": (lambda: msp.score(x), "forward"),
        "energy": (lambda: energy.score(x), "forward"),
        "mahalanobis": (lambda: maha.score(x), "forward"),
        "gradnorm": (lambda: U.gradnorm(model, x), "forward"),
        "odin": (lambda: U.odin(model, x), "fwd+bwd+fwd"),
        "confounding (fc)": (lambda: U.confounding_score(model, x, [model.fc], "softmax"),
                             "fwd+fc bwd"),
        "confounding (all)": (lambda: U.confounding_score(model, x, loss="softmax"),
                              "fwd+all-param bwd"),
    }
    limits = {
        "forward": lambda: forward_limit(model, x),
        "fwd+bwd+fwd": lambda: odin_limit(model, x),
        "fwd+fc bwd": lambda: param_backward_limit(model, x, params_fc),
        "fwd+all-param bwd": lambda: param_backward_limit(model, x, params_all),
    }
    targets = {"forward": 1.2}
    peer = peers(model, ds.x_train, ds.y_train)
    for name, (fn, _) in ours.items():
        if name in peer:
            torch.testing.assert_close(fn(), peer[name](x).detach(), rtol=2e-3, atol=1e-5)
    print(f"{torch.get_num_threads()} thread(s); zoo 'signs' SmallCNN, batch of {BATCH} signs "
          f"test images 48x48; ms = medians, ratios = medians of back-to-back ratios over "
          f"{REPEATS} interleaved repeats (5 for 'all')"
          + ("" if peer else "; pytorch-ood not installed: no peer column"))
    print(f"  {'score':18s} {'ours ms':>8s} {'limit':>18s} {'ms':>7s} {'ours/limit':>10s} "
          f"{'target':>6s} {'peer ms':>8s} {'peer/ours':>9s}")
    for name, (fn, limit_name) in ours.items():
        fns = {"ours": fn, "limit": limits[limit_name]}
        if name in peer:
            fns["peer"] = lambda name=name: peer[name](x)
        repeats = REPEATS if "all" not in name else 5
        for p in model.parameters():  # the limits' input backward must not touch parameters
            p.requires_grad_(limit_name != "fwd+bwd+fwd")
        raw = timings(fns, repeats)
        for p in model.parameters():
            p.requires_grad_(True)
        t = medians(raw)
        target = targets.get(limit_name, 1.5)
        ratio = paired_ratio(raw["ours"], raw["limit"])
        peer_cols = (f"{t['peer'] * 1e3:8.1f} {paired_ratio(raw['peer'], raw['ours']):8.2f}x"
                     if "peer" in t else f"{'-':>8s} {'-':>9s}")
        flag = "" if ratio <= target else "  <- above target"
        print(f"  {name:18s} {t['ours'] * 1e3:8.1f} {limit_name:>18s} {t['limit'] * 1e3:7.1f} "
              f"{ratio:10.2f} {target:6.1f} {peer_cols}{flag}")
    print("results equal to pytorch-ood (sign flipped) where listed: yes")


if __name__ == "__main__":
    main()
