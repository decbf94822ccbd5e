"""Gradients at inference: layer gradients, contrast gradients, confounding-label norms, Fisher.

Notation (DESIGN §7): logits ``z = f(x)`` (B, K), ``p = softmax(z)``, prediction
``P = argmax z``, penultimate features ``h`` (B, D) = the input of the final ``nn.Linear``
with weight ``W`` (K, D) and bias ``b`` (K,), and activations ``A`` (B, C, h, w) of a target
layer. Every gradient here is the gradient **of a loss** (never an update step ``−η∇``), taken
at inference: the model stays in eval mode, its parameters are not changed, and
``.grad`` fields are never written.

==============================  =============================================================
function                        what it returns
==============================  =============================================================
default_target_layer            the module whose output CAM methods explain
capture_output                  context manager: a layer's output (forward hook, removed)
layer_activations_and_gradients ``A`` and ``∂(Σ_b s_b)/∂A`` for per-sample scores ``s`` (B,)
layer_logit_gradients           ``A`` and ``∂z_k/∂A`` for all K logits at once (one batched
                                backward)
contrast_gradients              ``∇_W CE(z, q) = (p − e_q) hᵀ`` for every class q, closed form
contrast_gradients_autograd     the same for any parameters, via ``torch.func`` (vmap over
                                samples and classes)
per_sample_gradients            ``∇_θ loss(f(x_b), t_b)`` for every sample, via ``torch.func``
confounding_gradient_norms      per-sample, per-layer ‖∇_θ L(z, 1)‖² for the all-ones label
score_vectors / fisher_information
                                ``U = ∇_θ log p(y|x)`` per sample and ``E[U Uᵀ]`` (diag/full)
==============================  =============================================================

References
----------
- R. R. Selvaraju et al., "Grad-CAM: visual explanations from deep networks via gradient-based
  localization", ICCV 2017.
- M. Prabhushankar, G. Kwon, D. Temel, G. AlRegib, "Contrastive explanations in neural
  networks", ICIP 2020 (contrast gradients ``∇ J(P, Q)``).
- M. Prabhushankar, G. AlRegib, "Introspective learning: a two-stage approach for inference
  in neural networks", NeurIPS 2022 (contrast gradients of the last layer as features).
- J. Lee, G. AlRegib, "Gradients as a measure of uncertainty in neural networks", ICIP 2020;
  J. Lee, G. AlRegib, "Probing the purview of neural networks via gradient analysis",
  IEEE Access 2023 (the all-ones confounding label).
- R. Huang, A. Geng, Y. Li, "On the importance of gradients for detecting distributional
  shifts in the wild" (GradNorm), NeurIPS 2021.
- S. Amari, "Natural gradient works efficiently in learning", Neural Computation 1998;
  J. Martens, "New insights and perspectives on the natural gradient method", JMLR 2020
  (Fisher information = E[score scoreᵀ] with y drawn from the model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from tutorial_utils._checks import check_device, check_images, check_model, resolve_classes
from tutorial_utils.utils import channels_last, preserved_state

__all__ = [
    "default_target_layer",
    "capture_output",
    "layer_activations_and_gradients",
    "layer_logit_gradients",
    "final_linear",
    "contrast_gradients",
    "contrast_gradients_autograd",
    "per_sample_gradients",
    "confounding_loss",
    "confounding_gradient_norms",
    "GradientNorms",
    "score_vectors",
    "ScoreVectors",
    "fisher_information",
]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

# --------------------------------------------------------------------------------------
# Checks shared by the module
# --------------------------------------------------------------------------------------


def _check_inputs(model: object, x: object) -> None:
    check_model(model)
    check_images(x)
    check_device(model, x)


def _check_layer(model: nn.Module, layer: object) -> nn.Module:
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module (a submodule of model), "
                        f"got {type(layer).__name__}")
    if not any(m is layer for m in model.modules()):
        raise ValueError("layer must be a submodule of model (e.g. model.layer4[-1])")
    return layer


def _class_list(classes: object, num_classes: int, name: str = "classes") -> torch.Tensor:
    """``None`` -> all K classes; an int or a sequence of ints -> (Q,) long tensor in [0, K)."""
    if classes is None:
        return torch.arange(num_classes)
    if isinstance(classes, bool):
        raise TypeError(f"{name} must be an int, a sequence of ints or None, got bool")
    if isinstance(classes, int):
        classes = [classes]
    if isinstance(classes, str) or not isinstance(classes, (Sequence, torch.Tensor)):
        raise TypeError(f"{name} must be an int, a sequence of ints or None, "
                        f"got {type(classes).__name__}")
    out = torch.as_tensor(classes).reshape(-1)
    if out.dtype.is_floating_point or out.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {out.dtype}")
    if out.numel() == 0:
        raise ValueError(f"{name} must name at least one class")
    bad = (out < 0) | (out >= num_classes)
    if bad.any():
        raise ValueError(f"{name} class {out[bad][0].item()} is out of range: the model has "
                         f"{num_classes} classes (0..{num_classes - 1})")
    return out.long()


# --------------------------------------------------------------------------------------
# Target layers and hooks
# --------------------------------------------------------------------------------------


def default_target_layer(model: nn.Module) -> nn.Module:
    """The layer whose output CAM methods explain by default (the last convolutional block).

    * zoo models (:class:`~tutorial_utils.models.SmallCNN`): ``model.target_layer``;
    * ResNet-like models (a ``layer4`` stage): ``model.layer4[-1]``;
    * VGG, MobileNetV2/V3, DenseNet, AlexNet (a ``features`` ``nn.Sequential`` that holds a
      convolution): ``model.features[-1]`` — VGG's last max-pool, MobileNet's last
      conv-BN-activation block, DenseNet's ``norm5``;
    * otherwise the last ``nn.Conv2d`` in ``model.modules()`` order.

    Raises ``ValueError`` ("pass layer=...") for a model without any convolution.
    """
    check_model(model)
    found = getattr(model, "target_layer", None)
    if isinstance(found, nn.Module):
        return found
    stage = getattr(model, "layer4", None)
    if isinstance(stage, nn.Sequential) and len(stage) > 0:
        return stage[-1]
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential) and len(features) > 0 and any(
            isinstance(m, nn.Conv2d) for m in features.modules()):
        return features[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to explain; pass "
                     "layer=... (the nn.Module whose (B, C, h, w) output the map should use)")


def _resolve_layer(model: nn.Module, layer: nn.Module | None) -> nn.Module:
    return default_target_layer(model) if layer is None else _check_layer(model, layer)


@contextlib.contextmanager
def capture_output(layer: nn.Module, *, track: bool = False) -> Iterator[dict]:
    """Capture ``layer``'s output during a forward pass: ``store["output"]``.

    With ``track=True`` the captured output is made a graph leaf that requires grad
    (``output.detach().requires_grad_()``) and the rest of the network receives a *clone* of
    it. Gradients with respect to ``store["output"]`` are then exact, the forward pass before
    the layer builds no graph, and in-place operations after the layer (``ReLU(inplace=True)``)
    cannot overwrite the captured tensor. ``store["calls"]`` counts the layer's calls.
    The hook is removed on exit, also when the body raises.
    """
    store: dict = {"calls": 0}

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> torch.Tensor | None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"layer output must be a tensor, got {type(output).__name__}; "
                            "pick a layer that returns a single (B, C, h, w) tensor")
        store["calls"] += 1
        if not track:
            store["output"] = output
            return None
        leaf = output.detach().requires_grad_(True)
        store["output"] = leaf
        return leaf.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _tracked_forward(model: nn.Module, x: torch.Tensor, layer: nn.Module
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, K) and the layer output (a grad-tracking leaf); parameters frozen.

    Call inside ``preserved_state(model)`` (which restores the ``requires_grad`` flags).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    with capture_output(layer, track=True) as store, torch.enable_grad():
        z = model(x.detach())
    if store["calls"] != 1:
        raise ValueError(f"layer must run exactly once in the forward pass, it ran "
                         f"{store['calls']} times; pass another layer=...")
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError("model must return logits of shape (B, K)")
    return z, store["output"]


def _target_score(target: object) -> ScoreFn:
    def score(z: torch.Tensor) -> torch.Tensor:
        classes = resolve_classes(target, z.detach(), "target")
        return z.gather(1, classes[:, None])[:, 0]

    return score


def _layer_pass(model: nn.Module, x: torch.Tensor, layer: nn.Module | None, target: object,
                score_fn: ScoreFn | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, ∂(Σ_b s_b)/∂A, z): the shared engine of every CAM method."""
    _check_inputs(model, x)
    layer = _resolve_layer(model, layer)
    if score_fn is not None and target is not None:
        raise ValueError("give either target or score_fn, not both")
    score_fn = _target_score(target) if score_fn is None else score_fn
    with preserved_state(model):
        z, act = _tracked_forward(model, x, layer)
        with torch.enable_grad():
            scores = score_fn(z)
        if not isinstance(scores, torch.Tensor) or scores.shape != (x.shape[0],):
            raise ValueError(f"score_fn must return one scalar per sample, shape ({x.shape[0]},)")
        (dact,) = torch.autograd.grad(scores.sum(), act)
    return act.detach(), dact, z.detach()


def layer_activations_and_gradients(model: nn.Module, x: torch.Tensor,
                                    layer: nn.Module | None = None, target=None,
                                    score_fn: ScoreFn | None = None
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations ``A`` of ``layer`` and the gradient of per-sample scores with respect to them.

    Args:
        model: classifier returning logits (B, K); run in eval mode (restored afterwards).
        x: images (B, C, H, W), pixels in [0, 1].
        layer: the module to explain (default :func:`default_target_layer`).
        target: int, one class per sample, or ``None`` (the prediction): the score is the
            logit ``s_b = z_b[target_b]``.
        score_fn: instead of ``target``, any per-sample scalar ``score_fn(z) -> (B,)`` of the
            logits, e.g. ``lambda z: F.cross_entropy(z, q, reduction="none")``.

    Returns:
        ``(A, dA)`` both (B, C, h, w) detached, with ``dA = ∂(Σ_b s_b)/∂A`` from one
        ``torch.autograd.grad`` call. In eval mode samples do not interact, so ``dA[b]`` is
        ``∂s_b/∂A[b]`` (units: score per unit activation).
    """
    act, dact, _ = _layer_pass(model, x, layer, target, score_fn)
    return act, dact


def layer_logit_gradients(model: nn.Module, x: torch.Tensor, layer: nn.Module | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``A`` (B, C, h, w), ``G`` (B, K, C, h, w) with ``G[b, k] = ∂z_{b,k}/∂A[b]``, logits (B, K).

    One forward pass and **one batched backward** (``is_grads_batched``: the K vector-Jacobian
    products are vectorised with vmap), instead of K backward passes. Any per-sample score
    linear in the logits with weights ``c`` (B, K) then has layer gradient ``Σ_k c_k G[:, k]``.
    """
    _check_inputs(model, x)
    layer = _resolve_layer(model, layer)
    with preserved_state(model):
        z, act = _tracked_forward(model, x, layer)
        k = z.shape[1]
        eye = torch.eye(k, dtype=z.dtype, device=z.device)
        seeds = eye[:, None, :].expand(k, z.shape[0], k)  # (K, B, K): one-hot per logit
        try:
            (g,) = torch.autograd.grad(z, act, grad_outputs=seeds, is_grads_batched=True)
        except RuntimeError:  # an op without a batching rule: fall back to K backwards
            g = torch.stack([torch.autograd.grad(z[:, i].sum(), act, retain_graph=i < k - 1)[0]
                             for i in range(k)])
    return act.detach(), g.transpose(0, 1), z.detach()


# --------------------------------------------------------------------------------------
# Contrast gradients of the last layer (closed form) and of any parameters (torch.func)
# --------------------------------------------------------------------------------------


def final_linear(model: nn.Module) -> nn.Linear:
    """The layer producing the logits: ``model.fc`` if it is an ``nn.Linear``, else the last
    ``nn.Linear`` in ``model.modules()`` order (``TypeError`` if there is none)."""
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError("model has no final nn.Linear layer; use contrast_gradients_autograd "
                        "with params=...")
    return linears[-1]


def _features_and_logits(model: nn.Module, x: torch.Tensor, fc: nn.Linear
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ``h`` (B, D) of ``fc`` and the logits (B, K), in eval mode, without a graph."""
    store: dict = {}

    def hook(_module: nn.Module, inputs: tuple) -> None:
        store["h"] = inputs[0]

    with preserved_state(model), torch.no_grad():
        handle = fc.register_forward_pre_hook(hook)
        try:
            z = model(channels_last(x))
        finally:
            handle.remove()
        fc_out = fc(store["h"]) if "h" in store else None
    h = store.get("h")
    if (h is None or h.dim() != 2 or z.shape != (x.shape[0], fc.out_features)
            or not torch.allclose(fc_out, z, rtol=1e-4, atol=1e-5)):
        raise ValueError("the model's logits must be the output of its final nn.Linear "
                         "(z = W h + b); for other models use contrast_gradients_autograd")
    return h, z


def contrast_gradients(model: nn.Module, x: torch.Tensor, classes=None, *,
                       return_bias: bool = False):
    """Gradients of ``CE(f(x), q)`` w.r.t. the last layer's weight for every contrast class q.

    Closed form (Prabhushankar et al. 2020; 2022): ``∂CE(z, q)/∂z = p − e_q`` and
    ``z = W h + b``, so

        ``∇_W CE(z, q) = (p − e_q) hᵀ``      (K, D),      ``∇_b CE(z, q) = p − e_q``  (K,).

    Signs: the gradient of the *loss* (a descent step would move ``W`` by ``−η∇``). Row ``q``
    of ``p − e_q`` is ``p_q − 1 ≤ 0`` and every other row ``p_k ≥ 0``; for ``q = P`` the
    gradient is small when the model is confident ("why not P with 100% confidence?").

    Args:
        model: classifier whose logits come from a final ``nn.Linear`` (see :func:`final_linear`).
        x: images (B, C, H, W).
        classes: contrast classes: ``None`` (all K), an int, or a sequence of Q class indices.
        return_bias: also return the bias gradients.

    Returns:
        ``g`` (B, Q, K, D) with ``g[b, i] = ∇_W CE(z_b, classes[i])``; with ``return_bias``
        the pair ``(g, g_bias)`` with ``g_bias`` (B, Q, K). One forward pass, no backward.
    """
    _check_inputs(model, x)
    fc = final_linear(model)
    h, z = _features_and_logits(model, x, fc)
    q = _class_list(classes, z.shape[1]).to(z.device)
    u = z.softmax(dim=1)[:, None, :] - F.one_hot(q, z.shape[1]).to(z.dtype)[None]  # (B, Q, K)
    g = u[..., None] * h[:, None, None, :]
    return (g, u) if return_bias else g


def select_params(model: nn.Module, params: object) -> tuple[dict, dict]:
    """Split the model's tensors into (selected parameters, everything else incl. buffers).

    ``params``: ``None`` (the final ``nn.Linear``), ``"all"``, an ``nn.Module`` inside
    ``model``, a parameter name, or a sequence of parameter names / submodules.
    """
    named = dict(model.named_parameters())
    if params is None:
        params = final_linear(model)
    elif isinstance(params, str) and params == "all":
        params = list(named)
    items = [params] if isinstance(params, (str, nn.Module)) else params
    if not isinstance(items, Sequence) or not items:
        raise TypeError("params must be None, an nn.Module, a parameter name or a non-empty "
                        "sequence of them")
    chosen: list[str] = []
    for item in items:
        if isinstance(item, str):
            if item not in named:
                raise ValueError(f"params: {item!r} is not a parameter name of model; "
                                 f"see [n for n, _ in model.named_parameters()]")
            chosen.append(item)
        elif isinstance(item, nn.Module):
            ids = {id(p) for p in item.parameters()}
            names = [n for n, p in named.items() if id(p) in ids]
            if not names:
                raise ValueError("params: the module holds no parameter of model")
            chosen.extend(names)
        else:
            raise TypeError(f"params entries must be str or nn.Module, got {type(item).__name__}")
    chosen = list(dict.fromkeys(chosen))
    selected = {n: named[n].detach() for n in chosen}
    rest = {n: p.detach() for n, p in named.items() if n not in selected}
    rest.update(dict(model.named_buffers()))
    return selected, rest


def _logits_fn(model: nn.Module, rest: dict) -> Callable:
    """``f(params, x_b) -> z_b`` (K,) for one image ``x_b`` (C, H, W), via ``functional_call``."""

    def f(params: dict, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**params, **rest}, (xb[None],))[0]

    return f


def contrast_gradients_autograd(model: nn.Module, x: torch.Tensor, params=None, classes=None,
                                *, chunk_size: int | None = None) -> dict[str, torch.Tensor]:
    """Contrast gradients ``∇_θ CE(f(x), q)`` for any parameters θ, with ``torch.func``.

    Per sample: one ``vjp`` of the logits w.r.t. θ, applied (``vmap``) to the Q cotangents
    ``p − e_q`` (= ∂CE(z, q)/∂z); samples are vectorised with an outer ``vmap``. No Python loop
    over classes or samples. ``chunk_size`` bounds the outer vmap's memory.

    Returns ``{name: (B, Q, *param.shape)}``; for the final layer's weight this equals
    :func:`contrast_gradients`. Same signs as there (gradient of the loss).
    """
    _check_inputs(model, x)
    selected, rest = select_params(model, params)
    with preserved_state(model), torch.no_grad():
        num_classes = model(x[:1]).shape[1]
    q = _class_list(classes, num_classes).to(x.device)
    f = _logits_fn(model, rest)

    def per_sample(xb: torch.Tensor) -> dict:
        z, pullback = vjp(lambda prm: f(prm, xb), selected)
        u = z.softmax(0)[None] - F.one_hot(q, num_classes).to(z.dtype)  # (Q, K)
        return vmap(pullback)(u)[0]

    with preserved_state(model):
        return vmap(per_sample, chunk_size=chunk_size)(x.detach())


def per_sample_gradients(model: nn.Module, x: torch.Tensor, loss_fn: Callable, targets=None,
                         params=None, *, chunk_size: int | None = None) -> dict[str, torch.Tensor]:
    """``∇_θ loss_fn(z_b, t_b)`` for every sample b, vectorised with ``torch.func``.

    ``loss_fn(z, t)`` maps one sample's logits (K,) (and its target ``t``, if ``targets`` is
    given) to a scalar. ``params`` selects θ: ``None`` (the final ``nn.Linear``), ``"all"``,
    a submodule, a parameter name, or a sequence of names / submodules. The model runs in
    eval mode (BatchNorm uses running statistics, dropout is off), so samples are independent.

    Returns ``{name: (B, *param.shape)}``.
    """
    _check_inputs(model, x)
    selected, rest = select_params(model, params)
    f = _logits_fn(model, rest)

    if targets is None:
        def loss(prm: dict, xb: torch.Tensor) -> torch.Tensor:
            return loss_fn(f(prm, xb))

        fn, args = vmap(grad(loss), in_dims=(None, 0), chunk_size=chunk_size), (x.detach(),)
    else:
        def loss(prm: dict, xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
            return loss_fn(f(prm, xb), tb)

        fn = vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=chunk_size)
        args = (x.detach(), targets)
    with preserved_state(model):
        return fn(selected, *args)


# --------------------------------------------------------------------------------------
# Confounding label (Lee & AlRegib 2020) / GradNorm (Huang et al. 2021)
# --------------------------------------------------------------------------------------

CONFOUNDING_LOSSES = ("sigmoid", "softmax")


def confounding_loss(z: torch.Tensor, loss: str = "sigmoid") -> torch.Tensor:
    """Loss of logits ``z`` (..., K) against the all-ones confounding label, summed over K.

    * ``"sigmoid"``: ``Σ_k BCE(σ(z_k), 1) = −Σ_k log σ(z_k)``; ``∂/∂z_k = σ(z_k) − 1``
      (Lee & AlRegib 2020: every class "present" at once — no input can satisfy it).
    * ``"softmax"``: ``−Σ_k log softmax(z)_k``; ``∂/∂z = K·p − 1``. This is ``K`` times
      GradNorm's ``KL(u ‖ softmax(z))`` up to a constant, so its gradients are K times
      GradNorm's (Huang et al. 2021).
    """
    if loss == "sigmoid":
        return -F.logsigmoid(z).sum(-1)
    if loss == "softmax":
        return -z.log_softmax(-1).sum(-1)
    raise ValueError(f"loss must be one of {CONFOUNDING_LOSSES}, got {loss!r}")


class GradientNorms(NamedTuple):
    """``norms`` (B, L): squared L2 norm of each layer's parameter gradient per sample;
    ``names`` (L,): the layers' qualified module names."""

    norms: torch.Tensor
    names: list[str]


def _layer_groups(model: nn.Module, layers: Sequence[nn.Module] | None) -> dict[str, list[str]]:
    """Module name -> its own (non-recursive) parameter names, for every layer with parameters."""
    wanted = None if layers is None else {id(m) for m in layers}
    groups: dict[str, list[str]] = {}
    for mod_name, module in model.named_modules():
        if wanted is not None and id(module) not in wanted:
            continue
        own = [f"{mod_name}.{n}" if mod_name else n
               for n, p in module.named_parameters(recurse=False)]
        if own:
            groups[mod_name] = own
    if not groups:
        raise ValueError("layers must hold at least one module with parameters of model")
    return groups


def confounding_gradient_norms(model: nn.Module, x: torch.Tensor, loss: str = "sigmoid",
                               layers: Sequence[nn.Module] | None = None, *,
                               chunk_size: int | None = None) -> GradientNorms:
    """Per-sample, per-layer ``‖∇_θ L(f(x), 1)‖²`` for the all-ones confounding label.

    The confounding label (Lee & AlRegib 2020) asks the network to output every class at
    once; the gradient that the model would need to move towards it is a feature of how
    "familiar" the input is. ``loss`` is :func:`confounding_loss` (``"sigmoid"`` = sigmoid-BCE,
    the default; ``"softmax"`` = GradNorm's loss × K). Gradients are exact per-sample
    gradients (``torch.func``: ``vmap(grad(·))`` with ``functional_call``), BatchNorm in eval
    mode; nothing is written to ``.grad``.

    Sign: larger norms mean "a larger update is needed". Lee & AlRegib read that as *less*
    in-distribution, while GradNorm (softmax loss, ``∂L/∂z = K·p − 1``) finds larger norms on
    *confident*, typically in-distribution inputs — the sign depends on the loss and the
    layer and is checked empirically in chapter 3. The function returns the raw norms; orient
    a score before using it (course convention: higher = more in-distribution).

    Args:
        layers: modules whose own parameters form the L groups (default: every module that
            owns parameters, e.g. each conv, BatchNorm and linear layer).

    Returns:
        :class:`GradientNorms` ``(norms (B, L), names)`` on x's device, units of loss².
    """
    _check_inputs(model, x)
    groups = _layer_groups(model, layers)
    names = [n for group in groups.values() for n in group]
    grads = per_sample_gradients(model, x, lambda z: confounding_loss(z, loss), params=names,
                                 chunk_size=chunk_size)
    norms = torch.stack([sum(grads[n].flatten(1).square().sum(1) for n in group)
                         for group in groups.values()], dim=1)
    return GradientNorms(norms.detach(), list(groups))


# --------------------------------------------------------------------------------------
# Score vectors and the Fisher information
# --------------------------------------------------------------------------------------


class ScoreVectors(NamedTuple):
    """``u`` (B, P): per-sample score ``∇_θ log p(y_b|x_b)`` flattened over the parameters
    ``names`` (in order, with ``shapes``); ``labels`` (B,): the y used."""

    u: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    shapes: list[torch.Size]


def _labels(model: nn.Module, x: torch.Tensor, labels: object, seed: int) -> torch.Tensor:
    """Given labels (checked) or y ~ Categorical(softmax(f(x))) with a seeded CPU generator."""
    with preserved_state(model), torch.no_grad():
        z = model(x)
    if labels is not None:
        return resolve_classes(labels, z, "labels")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    gen = torch.Generator().manual_seed(seed)
    return torch.multinomial(z.softmax(1).double().cpu(), 1, generator=gen)[:, 0].to(x.device)


def _log_likelihood(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``log softmax(z)[t]`` for one sample's logits (K,) and label ``t`` (vmap-safe)."""
    return z.log_softmax(-1).gather(0, t[None])[0]


def score_vectors(model: nn.Module, x: torch.Tensor, params=None, labels=None, *,
                  seed: int = 0, chunk_size: int | None = None) -> ScoreVectors:
    """Per-sample score vectors ``U_b = ∇_θ log p(y_b | x_b)`` (sign: gradient of the
    log-likelihood, i.e. ``−∇_θ CE``).

    ``labels=None`` draws ``y_b ~ p(·|x_b)`` from the model (seeded by ``seed``); then
    ``E_y[U] = Σ_y p_y ∇ log p_y = ∇ Σ_y p_y = 0``, so the Fisher ``E[U Uᵀ]`` is the covariance
    of the score. With given (true) labels ``E[U Uᵀ]`` is the *empirical* Fisher instead.
    ``params`` selects θ as in :func:`contrast_gradients_autograd` (default: the final linear
    layer).
    """
    _check_inputs(model, x)
    y = _labels(model, x, labels, seed)
    grads = per_sample_gradients(model, x, _log_likelihood, targets=y, params=params,
                                 chunk_size=chunk_size)
    names = list(grads)
    u = torch.cat([grads[n].flatten(1) for n in names], dim=1)
    return ScoreVectors(u.detach(), y, names, [grads[n].shape[1:] for n in names])


MAX_FULL_FISHER = 20_000


def fisher_information(model: nn.Module, x: torch.Tensor, params=None, labels=None,
                       full: bool = False, *, seed: int = 0) -> torch.Tensor:
    """Monte-Carlo Fisher information ``F = mean_b U_b U_bᵀ`` from :func:`score_vectors`.

    Returns the diagonal ``mean_b U_b²`` (P,) by default, or the full (P, P) matrix with
    ``full=True`` (only for small parameter sets, P ≤ 20 000, e.g. the final linear layer).
    Units: (log-likelihood per parameter unit)². Parameters are flattened in the order of
    ``score_vectors(...).names``.
    """
    check_model(model)
    if full:
        size = sum(p.numel() for p in select_params(model, params)[0].values())
        if size > MAX_FULL_FISHER:
            raise ValueError(f"full=True needs a (P, P) matrix with P = {size} > "
                             f"{MAX_FULL_FISHER}; pass params=<a small layer> or full=False")
    u = score_vectors(model, x, params=params, labels=labels, seed=seed).u
    return u.T @ u / u.shape[0] if full else u.square().mean(0)
