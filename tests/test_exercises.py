"""Exercise checkers: the reference solution passes; typical mistakes are named; nothing raises."""

from __future__ import annotations

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


CASES["mutual_information_split"] = (
    X.mutual_information_split,
    lambda p: (_h(p).mean(0), _h(p.mean(0)) - _h(p).mean(0)),
    [(lambda p: (_h(p.mean(0)) - _h(p).mean(0), _h(p).mean(0)), "swapped"),
     (lambda p: (_h(p).mean(0), _h(p).mean(0) - _h(p.mean(0))), "sign error")])


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_solution_passes_and_mistakes_are_named(name, capsys):
    checker, solution, mistakes = CASES[name]
    ok, out = _verdict(capsys, lambda: checker(solution))
    assert ok is True and "✓" in out
    for wrong, words in mistakes:
        ok, out = _verdict(capsys, lambda wrong=wrong: checker(wrong))
        assert ok is False and "✗" in out and words in out, out


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
    assert ok is False and "RuntimeError: oops" in out


def test_multiple_choice(capsys):
    assert X.occlusion_patch("mean") is True
    ok, out = _verdict(capsys, lambda: X.occlusion_patch("grey"))
    assert ok is False and "+1.2σ" in out
    assert X.detection_orientation("reversed") is True
    ok, out = _verdict(capsys, lambda: X.detection_orientation("useless"))
    assert ok is False and "chance" in out
    ok, out = _verdict(capsys, lambda: X.occlusion_patch("purple"))
    assert ok is False and "not one of the options" in out
