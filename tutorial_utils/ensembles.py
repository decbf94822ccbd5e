"""Ensembles and MC dropout: predictive uncertainty from several stochastic predictions.

A deep ensemble (M independently trained members) and Monte-Carlo dropout (T passes with
random dropout masks, an implicit ensemble) both give a set of predictive distributions
``p_t`` (T, B, K) per image. Their spread splits the uncertainty of the mean prediction
``p̄ = mean_t p_t`` into two parts, all in nats (Depeweg et al. 2018)::

    H(p̄)            =   mean_t H(p_t)    +   [H(p̄) − mean_t H(p_t)]
    predictive          aleatoric            epistemic (mutual information, ≥ 0)

Aleatoric: what every member finds ambiguous (data noise, a sign between two classes);
epistemic: where the members disagree (the model has not seen such inputs).

=====================  ===================================================================
name                   what it returns
=====================  ===================================================================
mc_dropout             :class:`PredictiveUncertainty` of T dropout passes (one batched pass)
ensemble_uncertainty   :class:`PredictiveUncertainty` of the M members of an ``Ensemble``
PredictiveUncertainty  probs, mean, predictive / aleatoric / epistemic, disagreement, variance
=====================  ===================================================================

These are **uncertainties** (higher = less certain). The course's scores are "higher = more
in-distribution": use ``-u.epistemic`` (``tutorial_utils.uncertainty.score("mc_dropout", ...)``
does). Models run in eval mode (only dropout layers are switched on for MC dropout) and are
restored afterwards; no hook is left behind.

References
----------
- Y. Gal, Z. Ghahramani, "Dropout as a Bayesian approximation: representing model uncertainty
  in deep learning", ICML 2016.
- B. Lakshminarayanan, A. Pritzel, C. Blundell, "Simple and scalable predictive uncertainty
  estimation using deep ensembles", NeurIPS 2017.
- S. Depeweg, J. M. Hernández-Lobato, F. Doshi-Velez, S. Udluft, "Decomposition of uncertainty
  in Bayesian deep learning for efficient and risk-sensitive learning", ICML 2018.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import nn

from tutorial_utils._checks import check_inputs, check_positive_int, check_seed
from tutorial_utils.utils import channels_last, preserved_state

__all__ = [
    "PredictiveUncertainty",
    "mc_dropout",
    "ensemble_uncertainty",
]


class PredictiveUncertainty(NamedTuple):
    """Uncertainty from T stochastic passes (MC dropout) or M ensemble members.

    ``probs`` (T, B, K) per pass; ``mean`` (B, K) the predictive distribution;
    ``predictive_entropy`` ``H(mean)``, ``aleatoric`` ``mean_t H(p_t)`` and ``epistemic``
    (mutual information = predictive − aleatoric, ≥ 0 up to rounding), each (B,) in nats,
    so ``predictive_entropy == aleatoric + epistemic``; ``disagreement`` (B,) the fraction of
    passes whose arg-max differs from ``mean.argmax``; ``variance`` (B,) the population
    variance over passes of the probability of that class. All: higher = more uncertain.
    """

    probs: torch.Tensor
    mean: torch.Tensor
    predictive_entropy: torch.Tensor
    aleatoric: torch.Tensor
    epistemic: torch.Tensor
    disagreement: torch.Tensor
    variance: torch.Tensor


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(p, p).sum(-1)


def _decompose(logits: torch.Tensor) -> PredictiveUncertainty:
    """The decomposition of logits (T, B, K), computed in float64, returned in their dtype.

    ``epistemic`` is the difference of the two rounded entropies, so the identity
    ``predictive == aleatoric + epistemic`` holds to the last bit whenever
    ``aleatoric ≥ predictive / 2`` (Sterbenz) and to one rounding otherwise.
    """
    dtype = logits.dtype
    probs = logits.double().softmax(-1)
    mean = probs.mean(0)
    predictive, aleatoric = _entropy(mean).to(dtype), _entropy(probs).mean(0).to(dtype)
    pred = mean.argmax(1)
    disagreement = (probs.argmax(-1) != pred).to(dtype).mean(0)
    p_pred = probs.gather(-1, pred[None, :, None].expand(len(probs), -1, 1))[..., 0]
    return PredictiveUncertainty(probs.to(dtype), mean.to(dtype), predictive, aleatoric,
                                 predictive - aleatoric, disagreement,
                                 p_pred.var(0, correction=0).to(dtype))


def _dropout_layers(model: nn.Module) -> list[nn.Module]:
    found = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if not found:
        raise ValueError("model has no dropout layer (nn.Dropout, nn.Dropout2d, ...): MC dropout "
                         "needs one; use ensemble_uncertainty for a deep ensemble")
    return found


@contextlib.contextmanager
def _tiled_at_dropout(dropouts: list[nn.Module], batch: int, passes: int) -> Iterator[None]:
    """Pre-hooks that repeat a dropout layer's (B, ...) input ``passes`` times (t-major)."""

    def hook(_module: nn.Module, inputs: tuple) -> tuple | None:
        h = inputs[0]
        if h.shape[0] != batch:
            return None  # already tiled by an earlier dropout layer
        return (h.repeat(passes, *[1] * (h.dim() - 1)), *inputs[1:])

    handles = [m.register_forward_pre_hook(hook) for m in dropouts]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the RNG of ``device`` inside a fork: the caller's global RNG state is untouched."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


MAX_ROWS = 2048  # images per forward when the whole batch has to be repeated
MAX_PASSES = 10_000  # MC-dropout passes: the estimate's error shrinks like 1/√T; 20-100 suffice


def check_passes(passes: object, name: str = "passes") -> int:
    """A number of MC-dropout passes: an int in ``[1, MAX_PASSES]`` (a NumPy int too)."""
    passes = check_positive_int(passes, name)
    if passes > MAX_PASSES:
        raise ValueError(f"{name}={passes} is more MC-dropout passes than the course allows "
                         f"(at most {MAX_PASSES:,}; the estimate's error shrinks like 1/√T, so "
                         f"20-100 passes suffice)")
    return passes


def _mc_logits_full(model: nn.Module, x: torch.Tensor, passes: int) -> torch.Tensor:
    """Logits (T·B, K) of the batch repeated T times (t-major), whole passes per forward."""
    per_chunk = max(1, MAX_ROWS // len(x))
    return torch.cat([model(x.repeat(min(per_chunk, passes - start), 1, 1, 1))
                      for start in range(0, passes, per_chunk)])


def mc_dropout(model: nn.Module, x: torch.Tensor, passes: int = 20, seed: int = 0
               ) -> PredictiveUncertainty:
    """Monte-Carlo dropout (Gal & Ghahramani 2016): T stochastic passes, decomposed.

    Only the dropout modules are switched to train mode (BatchNorm keeps its running
    statistics); every mode is restored afterwards. The passes run as **one batched forward**:
    a pre-hook tiles the input of the first dropout layer T times, so the deterministic part of
    the network before it runs once (the zoo models have one dropout, right before ``fc``).
    If the tiled batch does not fit the rest of the network, the whole input batch is repeated
    T times instead (whole passes per forward, at most :data:`MAX_ROWS` images). Masks come
    from the device RNG seeded with ``seed`` inside ``torch.random.fork_rng``: the same seed
    gives the same result, the global RNG state is left as it was. (Masks depend on the batch
    layout, so one image alone gets other masks than inside a batch.)

    Returns :class:`PredictiveUncertainty` with ``probs`` (T, B, K) and (B,) entropies in nats.
    """
    check_inputs(model, x)
    passes = check_passes(passes, "passes")
    seed = check_seed(seed)
    dropouts = _dropout_layers(model)
    batch = x.shape[0]
    with preserved_state(model), torch.inference_mode():
        for m in dropouts:
            m.train()
        xc = channels_last(x)
        try:
            with _seeded(seed, x.device), _tiled_at_dropout(dropouts, batch, passes):
                z = model(xc)
        except RuntimeError:
            z = None
        if z is None or z.dim() != 2 or z.shape[0] != passes * batch:
            with _seeded(seed, x.device):
                z = _mc_logits_full(model, xc, passes)
    return _decompose(z.clone().view(passes, batch, -1))


def ensemble_uncertainty(ensemble: nn.Module, x: torch.Tensor) -> PredictiveUncertainty:
    """The same decomposition over the M members of a deep ensemble (Lakshminarayanan et al.).

    ``ensemble`` is an :class:`~tutorial_utils.architectures.Ensemble` (zoo
    ``"signs-ensemble"``) or any module with ``member_logits(x) -> (M, B, K)``. Returns
    :class:`PredictiveUncertainty` with ``probs`` (M, B, K); ``disagreement`` is the fraction of
    members whose arg-max differs from the ensemble's prediction.
    """
    check_inputs(ensemble, x, model_name="ensemble")
    if not callable(getattr(ensemble, "member_logits", None)):
        raise TypeError("ensemble must be an architectures.Ensemble (a module with "
                        "member_logits(x) -> (M, B, K)), e.g. models.load('signs-ensemble')")
    with preserved_state(ensemble), torch.inference_mode():
        z = ensemble.member_logits(channels_last(x))
    return _decompose(z.clone())


