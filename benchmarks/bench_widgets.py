"""Redraw times of every explorer, per control: median and max in ms against the budget.

The course's budget for a widget update on the CPU is a median of 150 ms (300 ms for the
chapter-5 dashboard, which runs every method of the course on one image). Unit tests drive
every control value and check what is drawn (``tests/test_widgets*.py``); wall-clock budgets
live here, where a loaded machine cannot fail a test for reasons that have nothing to do with
the code. Each explorer is built on the zoo models and small data sets like the chapters', then
every control is moved through all its values ``--rounds`` times (default 3); the first
redraw after building is left out. The dashboard holds both zoo models (``signs`` and
``signs-vit``) behind its model switch: ``dashboard_explorer`` drives every control starting on
the CNN (its ``model`` row times the switches), ``dashboard_explorer:ViT`` the same on the ViT.
Run under a quiet machine (``--only dashboard`` drives the dashboard alone):

    python benchmarks/bench_widgets.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tutorial_utils import (
    cam,
    contrast,
    dashboard,
    data,
    detection,
    evaluation,
    introspection,
    models,
    robustness,
    trust,
    widgets,
)
from tutorial_utils.data import stratified_indices

BUDGET_MS = {"default": 150.0, "dashboard_explorer": 300.0}


def _options(control) -> list:
    """Every value a control can take, in order."""
    if hasattr(control, "options") and control.options:
        return [o[1] if isinstance(o, tuple) else o for o in control.options]
    count = int(round((control.max - control.min) / control.step)) + 1  # int and float sliders
    return [type(control.value)(control.min + i * control.step) for i in range(count)]


def drive(name: str, explorer, rounds: int) -> list[tuple[str, float, float, int]]:
    """Move every control through all its values ``rounds`` times; per control the median and
    max redraw time in ms and the number of redraws."""
    rows = []
    for key, control in explorer.controls.items():
        values = _options(control)
        start = len(explorer.state["seconds"])
        for _ in range(rounds):
            for value in values:
                before = explorer.state["calls"]
                control.value = value
                if explorer.state["calls"] == before:  # unchanged value: redraw by hand
                    explorer.update()
        seconds = explorer.state["seconds"][start:]
        rows.append((key, 1e3 * statistics.median(seconds), 1e3 * max(seconds), len(seconds)))
    return rows


def explorers():
    """(name, builder) for every explorer of the course, on chapter-like data."""
    signs, digits = data.load_signs(), data.load_digits()
    sign_model, digit_model = models.load("signs"), models.load("digits")
    picker = signs.x_test[[int(torch.nonzero(signs.y_test == k)[0]) for k in range(14)]]

    def challenge():
        idx = stratified_indices(signs.y_test, 2)
        cache = robustness.ChallengeCache(sign_model, signs.x_test[idx], signs.y_test[idx],
                                          signs.classes, seed=0)
        return widgets.challenge_explorer(cache, index=3, kind="snow", level=0)

    def contrast_box():
        reps = signs.x_test[contrast.representatives(sign_model, signs.x_test, signs.y_test)]
        return widgets.contrast_explorer(sign_model, picker, signs.classes, rep_images=reps)

    def level():
        idx = stratified_indices(signs.y_train, 4, seed=0)
        h, z = models.features_and_logits(sign_model, signs.x_train[idx])
        intro, ff = introspection.build_heads(h.shape[1], 14, hidden=4, seed=0)
        introspection.train_head(intro, h, z, signs.y_train[idx], epochs=2, progress=False)
        introspection.train_head(ff, h, z, signs.y_train[idx], epochs=2, progress=False)
        te = stratified_indices(signs.y_test, 1, seed=0)
        results = introspection.evaluate_heads(
            sign_model, {"feed-forward": ff, "introspective": intro}, signs.x_test[te],
            signs.y_test[te], challenges=("noise", "haze", "snow"), progress=False)
        return widgets.level_explorer(results)

    def scores():
        suite = detection.ScoreSuite(sign_model, signs.x_train[::30], signs.y_train[::30],
                                     names=("MSP", "Energy", "Mahalanobis", "random"))
        x = signs.x_test[stratified_indices(signs.y_test, 2)]
        grid = {(kind, lv): suite(data.apply_challenge(x, kind, lv))
                for kind in ("snow", "haze", "noise") for lv in (1, 3, 5)}
        go = data.load_ood("go", n=24, seed=0)
        return suite(x), grid, go, suite(go)

    shared: dict = {}

    def score_box():
        shared["scores"] = scores()
        clean, grid, _, _ = shared["scores"]
        return widgets.score_explorer(clean, grid, kind="snow", level=1, score="MSP")

    def threshold_box():
        clean, _, go, go_scores = shared.get("scores") or scores()
        return widgets.threshold_explorer(clean, go_scores, go, score="MSP")

    def voice_box():
        x = picker[:6]
        return widgets.voice_explorer(x, trust.voice(sign_model, x), [f"#{i}" for i in range(6)])

    def masking():
        idx = stratified_indices(digits.y_test, 2)
        x, y = digits.x_test[idx], digits.y_test[idx]
        maps = {"Grad-CAM": cam.grad_cam(digit_model, x), "image itself": x[:, 0]}
        curves = {n: evaluation.structure_wise_curve(digit_model, x, m, y) for n, m in
                  maps.items()}
        return widgets.masking_explorer(digit_model, x[3], {n: m[3] for n, m in maps.items()},
                                        curves, threshold=0.5)

    def occluder():
        i = int(torch.nonzero(signs.y_test == 5)[0])
        return widgets.occluder_explorer(sign_model, signs.x_test[i], signs.classes, target=5)

    def attack():
        i = int(torch.nonzero(signs.y_test == 5)[0])
        return widgets.attack_explorer(sign_model, signs.x_test[i], 5, signs.classes,
                                       (0.0, 2 / 255, 8 / 255, 16 / 255), epsilon=8 / 255)

    def dashboard_box(start: str = "CNN"):
        # both zoo models, each with the reference set built for it; the model switch is one
        # more control (driven like the others), ``start`` the model the other controls run on
        fit = stratified_indices(signs.y_train, 10, seed=0)
        ref = stratified_indices(signs.y_test, 5, seed=0)
        if "nets" not in shared:
            shared["nets"] = {"CNN": sign_model, "ViT": models.load("signs-vit")}
            shared["refs"] = {name: dashboard.build_reference(net, signs.x_train[fit],
                                                              signs.y_train[fit],
                                                              signs.x_test[ref])
                              for name, net in shared["nets"].items()}
        return widgets.dashboard_explorer(shared["nets"], shared["refs"], picker,
                                          torch.arange(14), signs.classes,
                                          data.load_ood("go", n=4, seed=0), sample=8,
                                          kind="snow", level=0, contrast=9, model_name=start)

    return [("challenge_explorer", challenge), ("contrast_explorer", contrast_box),
            ("level_explorer", level), ("score_explorer", score_box),
            ("threshold_explorer", threshold_box), ("voice_explorer", voice_box),
            ("masking_explorer", masking), ("occluder_explorer", occluder),
            ("attack_explorer", attack), ("dashboard_explorer", dashboard_box),
            ("dashboard_explorer:ViT", lambda: dashboard_box("ViT"))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over every control value")
    parser.add_argument("--only", default=None,
                        help="drive only the explorers whose name starts with this")
    args = parser.parse_args(argv)
    print(f"{torch.get_num_threads()} thread(s); {args.rounds} passes over every control value;"
          " ms per redraw (the first redraw after building left out)")
    print(f"  {'explorer':22s} {'control':10s} {'redraws':>7s} {'median':>8s} {'max':>8s} "
          f"{'budget':>7s}")
    for name, build in explorers():
        if args.only and not name.startswith(args.only):
            continue
        start = time.perf_counter()
        box = build()
        built = time.perf_counter() - start
        budget = BUDGET_MS.get(name.split(":")[0], BUDGET_MS["default"])
        for control, median, longest, n in drive(name, box, args.rounds):
            flag = "" if median <= budget else "  <- above budget"
            print(f"  {name:22s} {control:10s} {n:7d} {median:8.1f} {longest:8.1f} "
                  f"{budget:7.0f}{flag}")
        print(f"  {name:22s} {'(built)':10s} {'':7s} {1e3 * built:8.0f}")


if __name__ == "__main__":
    main()
