"""Exercise checkers: the reference solution passes; typical mistakes are named; nothing raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_utils import exercises as X


def _verdict(capsys, call):
    result = call()
    return result, capsys.readouterr().out


CASES = {
    "softmax_temperature": (X.softmax_temperature, lambda z, t: (z / t).softmax(0),
                            [(lambda z, t: (z * t).softmax(0), "multiplied"),
                             (lambda z, t: z.softmax(0), "no effect")]),
    "entropy_bits": (X.entropy_bits,
                     lambda p: -torch.where(p > 0, p * torch.log2(p), torch.zeros_like(p)).sum(1),
                     [(lambda p: -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(1),
                       "nats"),
                      (lambda p: -(p * torch.log2(p)).sum(1), "NaN"),
                      (lambda p: torch.where(p > 0, p * torch.log2(p), torch.zeros_like(p)).sum(1),
                       "sign error")]),
    "fisher_matrix": (X.fisher_matrix, lambda u: u.T @ u / len(u),
                      [(lambda u: u @ u.T / len(u), "(N, N)"), (lambda u: u.T @ u, "summed"),
                       (lambda u: torch.cov(u.T), "covariance")]),
    "gradcam_weights": (X.gradcam_weights, lambda a, g: g.mean(dim=(2, 3)),
                        [(lambda a, g: -g.mean(dim=(2, 3)), "sign error"),
                         (lambda a, g: g.mean(dim=1), "wrong axis"),
                         (lambda a, g: g.sum(dim=(2, 3)), "summed"),
                         (lambda a, g: (a * g).mean(dim=(2, 3)), "activations")]),
    "contrast_weights": (X.contrast_weights,
                         lambda p, j, q: (p - torch.nn.functional.one_hot(
                             torch.tensor(q), len(p)).double()) @ j,
                         [(lambda p, j, q: (torch.nn.functional.one_hot(
                             torch.tensor(q), len(p)).double() - p) @ j, "sign error"),
                          (lambda p, j, q: j[int(p.argmax())] - j[q], "approximation")]),
    "energy_score": (X.energy_score, lambda z, t: t * torch.logsumexp(z / t, dim=1),
                     [(lambda z, t: -t * torch.logsumexp(z / t, dim=1), "sign error"),
                      (lambda z, t: torch.logsumexp(z / t, dim=1), "factor T"),
                      (lambda z, t: z.max(1).values, "maximum logit")]),
}


def _h(p):
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def _handover(trust, correct, share):
    order = np.argsort(np.asarray(trust), kind="stable")
    return float(np.asarray(correct)[order[int(share * len(order)):]].mean())


def _handover_wrong(trust, correct, share):
    order = np.argsort(-np.asarray(trust), kind="stable")
    return float(np.asarray(correct)[order[int(share * len(order)):]].mean())


CASES["tta_average"] = (X.tta_average, lambda p: p.mean(0),
                        [(lambda p: p.mean(1), "wrong axis"),
                         (lambda p: p.log().mean(0).softmax(-1), "geometric mean")])
CASES["handover_accuracy"] = (X.handover_accuracy, _handover,
                              [(_handover_wrong, "most"),
                               (lambda t, c, s: float(np.mean(c)), "expected the kept")])

CASES["mutual_information_split"] = (
    X.mutual_information_split,
    lambda p: (_h(p).mean(0), _h(p.mean(0)) - _h(p).mean(0)),
    [(lambda p: (_h(p.mean(0)) - _h(p).mean(0), _h(p).mean(0)), "swapped"),
     (lambda p: (_h(p).mean(0), _h(p).mean(0) - _h(p.mean(0))), "sign error")])


# chapter 4 ------------------------------------------------------------------------------
def _unit(f):
    return (f - f[0]) / (f[-1] - f[0])


def _tpr_at_fpr(members, nonmembers, fpr, strict=False):
    k = int(fpr * len(nonmembers) + 1e-9) - (1 if strict else 0)
    if k < 0:
        return (members > nonmembers.max()).double().mean()
    threshold = nonmembers.sort(descending=True).values[min(k, len(nonmembers) - 1)]
    return (members > threshold).double().mean()


CASES["deletion_auc"] = (
    X.deletion_auc, lambda f, p: torch.trapezoid(p, _unit(f), dim=1),
    [(lambda f, p: torch.trapezoid(p, f, dim=1), "784×"),
     (lambda f, p: p.mean(dim=1), "end points"),
     (lambda f, p: p[:, :-1].mean(dim=1), "Riemann"),
     (lambda f, p: torch.trapezoid(p.mean(0), _unit(f)), "one area per curve")])
CASES["fgsm_step"] = (
    X.fgsm_step, lambda x, g, e: (x + e * g.sign()).clamp(0, 1),
    [(lambda x, g, e: (x - e * g.sign()).clamp(0, 1), "sign error"),
     (lambda x, g, e: x + e * g.sign(), "clamp"),
     (lambda x, g, e: (x + e * g).clamp(0, 1), "its sign")])
CASES["tpr_at_fpr"] = (
    X.tpr_at_fpr, _tpr_at_fpr,
    [(lambda m, n, a: _tpr_at_fpr(m, n, a, strict=True), "FPR < 1%"),
     (lambda m, n, a: 10 * _tpr_at_fpr(m, n, a), "number of members"),
     (lambda m, n, a: _tpr_at_fpr(-m, -n, a), "direction")])


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_solution_passes_and_mistakes_are_named(name, capsys):
    checker, solution, mistakes = CASES[name]
    ok, out = _verdict(capsys, lambda: checker(solution))
    assert ok.ok is True and "✓" in out
    for wrong, words in mistakes:
        ok, out = _verdict(capsys, lambda wrong=wrong: checker(wrong))
        assert ok.ok is False and "✗" in out and words in out, out


@pytest.mark.parametrize("name", sorted(CASES))
def test_untouched_exercise_is_not_attempted(name, capsys):
    checker = CASES[name][0]

    def placeholder(*args):
        ...

    for answer in (None, ..., placeholder):
        ok, out = _verdict(capsys, lambda answer=answer: checker(answer))
        assert ok is None and "not attempted" in out


def test_code_that_raises_is_reported_not_raised(capsys):
    def broken(acts, grads):
        raise RuntimeError("oops")

    ok, out = _verdict(capsys, lambda: X.gradcam_weights(broken))
    assert ok.ok is False and "RuntimeError: oops" in out


def test_multiple_choice(capsys):
    assert X.occlusion_patch("mean").ok is True
    ok, out = _verdict(capsys, lambda: X.occlusion_patch("grey"))
    assert ok.ok is False and "+1.2σ" in out
    assert X.detection_orientation("reversed").ok is True
    ok, out = _verdict(capsys, lambda: X.detection_orientation("useless"))
    assert ok.ok is False and "chance" in out
    ok, out = _verdict(capsys, lambda: X.occlusion_patch("purple"))
    assert ok.ok is False and "not one of the options" in out


def test_a_verdict_leaves_no_out_line(capsys):
    """A checker cell shows its printed verdict only: the returned Verdict displays nothing."""
    from IPython.core.formatters import DisplayFormatter

    verdict = X.occlusion_patch("mean")
    assert bool(verdict) and verdict == True  # noqa: E712 - it still reads as the bool
    assert not X.occlusion_patch("grey") and X.occlusion_patch("grey") == False  # noqa: E712
    assert DisplayFormatter().format(verdict) == ({}, {})
