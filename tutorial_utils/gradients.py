"""Parameter gradients at inference: contrast gradients, per-sample gradients, confounding labels.

Notation (DESIGN §7): logits ``z = f(x)`` (B, K), ``p = softmax(z)``, prediction
``P = argmax z``, penultimate features ``h`` (B, D) = the input of the final ``nn.Linear``
with weight ``W`` (K, D) and bias ``b`` (K,). Every gradient here is the gradient **of a loss**
with respect to the network's *parameters* (never an update step ``−η∇``), taken at inference:
the model stays in eval mode, its parameters are not changed, and ``.grad`` fields are never
written. Gradients with respect to a layer's *activations* (the CAM engine) live in
:mod:`tutorial_utils.layers`; score vectors and the Fisher information in
:mod:`tutorial_utils.information`.

==============================  =============================================================
function                        what it returns
==============================  =============================================================
final_linear                    the ``nn.Linear`` that produces the logits
contrast_gradients              ``∇_W CE(z, q) = (p − e_q) hᵀ`` for every class q, closed form
contrast_gradients_autograd     the same for any parameters, via ``torch.func`` (vmap over
                                samples and classes)
select_params                   split a model's tensors into chosen parameters and the rest
per_sample_gradients            ``∇_θ loss(f(x_b), t_b)`` for every sample, via ``torch.func``
confounding_loss                the loss against the all-ones label (sigmoid or softmax)
confounding_gradient_norms      per-sample, per-layer ‖∇_θ L(z, 1)‖² for the all-ones label
==============================  =============================================================

References
----------
- M. Prabhushankar, G. Kwon, D. Temel, G. AlRegib, "Contrastive explanations in neural
  networks", ICIP 2020 (contrast gradients ``∇ J(P, Q)``).
- M. Prabhushankar, G. AlRegib, "Introspective learning: a two-stage approach for inference
  in neural networks", NeurIPS 2022 (contrast gradients of the last layer as features).
- J. Lee, G. AlRegib, "Gradients as a measure of uncertainty in neural networks", ICIP 2020;
  J. Lee, G. AlRegib, "Probing the purview of neural networks via gradient analysis",
  IEEE Access 2023 (the all-ones confounding label).
- R. Huang, A. Geng, Y. Li, "On the importance of gradients for detecting distributional
  shifts in the wild" (GradNorm), NeurIPS 2021.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from tutorial_utils._checks import (
    check_callable,
    check_classes,
    check_inputs,
    check_model,
    check_positive_int,
    require_autograd,
)
from tutorial_utils.utils import channels_last, preserved_state

__all__ = ["final_linear", "contrast_gradients", "contrast_gradients_autograd", "select_params",
           "per_sample_gradients", "confounding_loss", "confounding_gradient_norms",
           "GradientNorms"]


def _class_list(classes: object, num_classes: int, name: str = "classes") -> torch.Tensor:
    """``None`` -> all K classes; an int or a sequence of ints -> (Q,) long tensor in [0, K)."""
    if classes is None:
        return torch.arange(num_classes)
    out = check_classes(classes, None, num_classes, name)
    if out.numel() == 0:
        raise ValueError(f"{name} must name at least one class")
    return out


def final_linear(model: nn.Module) -> nn.Linear:
    """The layer producing the logits: ``model.fc`` if it is an ``nn.Linear``, else the last
    ``nn.Linear`` in ``model.modules()`` order (``TypeError`` if there is none)."""
    fc = getattr(check_model(model), "fc", None)
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
    check_inputs(model, x)
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
    named = dict(check_model(model).named_parameters())
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
    check_inputs(model, x)
    chunk_size = None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
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
    check_inputs(model, x)
    check_callable(loss_fn, "loss_fn")
    chunk_size = None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    if targets is not None and (not isinstance(targets, torch.Tensor) or targets.dim() == 0
                                or len(targets) != len(x)):
        raise ValueError(f"targets must be a tensor with one entry per image ({len(x)}), got "
                         f"{getattr(targets, 'shape', type(targets).__name__)}")
    selected, rest = select_params(model, params)
    f = _logits_fn(model, rest)

    def scalar(value: object) -> torch.Tensor:
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            raise ValueError("loss_fn must return one scalar per sample (it gets one sample's "
                             f"logits (K,)), got {getattr(value, 'shape', type(value).__name__)}")
        return value

    if targets is None:
        def loss(prm: dict, xb: torch.Tensor) -> torch.Tensor:
            return scalar(loss_fn(f(prm, xb)))

        fn, args = vmap(grad(loss), in_dims=(None, 0), chunk_size=chunk_size), (x.detach(),)
    else:
        def loss(prm: dict, xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
            return scalar(loss_fn(f(prm, xb), tb))

        fn = vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=chunk_size)
        args = (x.detach(), targets)
    with preserved_state(model):
        return fn(selected, *args)


CONFOUNDING_LOSSES = ("sigmoid", "softmax")


def confounding_loss(z: torch.Tensor, loss: str = "sigmoid") -> torch.Tensor:
    """Loss of logits ``z`` (..., K) against the all-ones confounding label, summed over K.

    * ``"sigmoid"``: ``Σ_k BCE(σ(z_k), 1) = −Σ_k log σ(z_k)``; ``∂/∂z_k = σ(z_k) − 1``
      (Lee & AlRegib 2020: every class "present" at once — no input can satisfy it).
    * ``"softmax"``: ``−Σ_k log softmax(z)_k``; ``∂/∂z = K·p − 1``. This is ``K`` times
      GradNorm's ``KL(u ‖ softmax(z))`` up to a constant, so its gradients are K times
      GradNorm's (Huang et al. 2021).
    """
    if not isinstance(z, torch.Tensor) or not torch.is_floating_point(z):
        raise TypeError(f"z must be a floating-point tensor of logits (..., K), got "
                        f"{getattr(z, 'dtype', type(z).__name__)}")
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
    if layers is not None and (isinstance(layers, nn.Module) or not isinstance(layers, Sequence)
                               or not all(isinstance(m, nn.Module) for m in layers)):
        raise TypeError(f"layers must be a list of nn.Modules (e.g. [model.fc]), got "
                        f"{type(layers).__name__}")
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


_FAST_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def _conv_weight_grads(conv: nn.Conv2d, inp: torch.Tensor, gout: torch.Tensor) -> torch.Tensor:
    """Per-sample weight gradients (B, C_out, C_in, kh, kw) of a ``groups=1`` convolution: with
    the batch folded into the channels, the samples are the groups of one grouped convolution,
    whose weight gradient is the stack of per-sample ones (Rochette et al. 2019)."""
    b = inp.shape[0]
    c_out, c_in, kh, kw = conv.weight.shape
    grads = torch.nn.grad.conv2d_weight(
        inp.reshape(1, b * c_in, *inp.shape[2:]), (b * c_out, c_in, kh, kw),
        gout.reshape(1, b * c_out, *gout.shape[2:]), conv.stride, conv.padding, conv.dilation,
        groups=b)
    return grads.reshape(b, c_out, c_in, kh, kw)


def _module_sq_norms(module: nn.Module, inp: torch.Tensor, gout: torch.Tensor) -> torch.Tensor:
    """Per-sample ``‖∇_θ‖²`` (B,) of a layer's own parameters from its input and the gradient
    of the summed loss w.r.t. its output (exact per sample in eval mode: samples don't mix).

    * ``Linear``: ``∇_W = g hᵀ`` per sample, so ``‖∇_W‖² = ‖g‖²‖h‖²``; ``‖∇_b‖² = ‖g‖²``.
    * ``Conv2d``: ``∇_W = g · unfold(x)ᵀ`` (C_out × C_in·k²) per sample; ``∇_b = Σ_uv g``.
    * ``BatchNorm2d`` (running statistics): ``∇_γ = Σ_uv g·x̂``, ``∇_β = Σ_uv g``.
    """
    b = inp.shape[0]
    if isinstance(module, nn.Linear):
        g, a = gout.reshape(b, -1, gout.shape[-1]), inp.reshape(b, -1, inp.shape[-1])
        weight = torch.einsum("bpk,bpd->bkd", g, a).flatten(1).square().sum(1)
        bias = g.sum(1).square().sum(1)
    elif isinstance(module, nn.Conv2d):
        weight = _conv_weight_grads(module, inp, gout).flatten(1).square().sum(1)
        bias = gout.sum((2, 3)).square().sum(1)
    else:  # BatchNorm2d in eval mode: Σ_uv g·x̂ = (Σ_uv g·x − μ Σ_uv g) / σ
        g_sum = gout.sum((2, 3))
        gx = ((gout * inp).sum((2, 3)) - module.running_mean * g_sum) / torch.sqrt(
            module.running_var + module.eps)
        weight, bias = gx.square().sum(1), g_sum.square().sum(1)
    total = weight if module.weight is not None else torch.zeros_like(weight)
    return total + (bias if getattr(module, "bias", None) is not None else 0)


def _fast_path_ok(model: nn.Module, groups: dict[str, list[str]]) -> bool:
    """True when every selected layer has a closed-form per-sample norm (see above)."""
    modules = [dict(model.named_modules())[name] for name in groups]
    return all(isinstance(m, _FAST_LAYERS)
               and not (isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros"
                                                      or isinstance(m.padding, str)))
               and not (isinstance(m, nn.BatchNorm2d) and (m.training
                                                          or not m.track_running_stats))
               for m in modules)


def _hooked_norms(model: nn.Module, x: torch.Tensor, loss: str,
                  groups: dict[str, list[str]]) -> torch.Tensor | None:
    """(B, L) squared norms from one forward and one backward, or None when a selected layer's
    output is changed in place later in the forward (its gradient would then be the wrong one).

    Forward hooks keep each layer's input and output; ``autograd.grad`` then asks for the
    gradients of the summed loss w.r.t. those outputs only (no parameter or input gradient).
    """
    modules = dict(model.named_modules())
    store: dict[str, list] = {name: [] for name in groups}
    handles = [modules[name].register_forward_hook(
        lambda _m, inp, out, name=name: store[name].append(
            (inp[0].detach(), out, inp[0]._version + out._version))) for name in groups]
    try:
        with preserved_state(model), torch.enable_grad():
            for p in model.parameters():
                p.requires_grad_(False)
            logits = model(channels_last(x.detach().clone().requires_grad_(True)))
            for name, captured in store.items():
                if len(captured) != 1:
                    raise ValueError(f"layer {name!r} must run exactly once in the forward pass")
            if any(inp._version + out._version != version
                   for (inp, out, version), in store.values()):
                return None
            outs = [store[name][0][1] for name in groups]
            gouts = torch.autograd.grad(confounding_loss(logits, loss).sum(), outs,
                                        allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([_module_sq_norms(modules[n], store[n][0][0],
                                         torch.zeros_like(o) if g is None else g)
                        for n, o, g in zip(groups, outs, gouts, strict=True)], dim=1)


def confounding_gradient_norms(model: nn.Module, x: torch.Tensor, loss: str = "sigmoid",
                               layers: Sequence[nn.Module] | None = None, *,
                               chunk_size: int | None = None,
                               method: str = "auto") -> GradientNorms:
    """Per-sample, per-layer ``‖∇_θ L(f(x), 1)‖²`` for the all-ones confounding label.

    The confounding label (Lee & AlRegib 2020) asks the network to output every class at
    once; the gradient that the model would need to move towards it is a feature of how
    "familiar" the input is. ``loss`` is :func:`confounding_loss` (``"sigmoid"`` = sigmoid-BCE,
    the default; ``"softmax"`` = GradNorm's loss × K). BatchNorm in eval mode; nothing is
    written to ``.grad``.

    Two exact ways to get per-sample gradients: ``method="hooks"`` (one batched forward and
    one backward to the layers' outputs; each layer's per-sample gradient norm then follows
    from its input and output gradient — in closed form for linear and BatchNorm layers, one
    grouped weight-gradient call for a convolution) and ``method="vmap"`` (``torch.func``:
    ``vmap(grad(·))`` over samples, any layer). ``"auto"`` takes the hooks when every selected
    layer is supported and no selected layer's input or output is changed in place later
    (``ReLU(inplace=True)``), else vmap. The two agree to float precision (tested).

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
    check_inputs(model, x)
    if method in ("auto", "hooks"):
        require_autograd("confounding_gradient_norms")
    if method not in ("auto", "hooks", "vmap"):
        raise ValueError(f"method must be 'auto', 'hooks' or 'vmap', got {method!r}")
    confounding_loss(torch.zeros(1, 2), loss)  # validates the loss name first
    groups = _layer_groups(model, layers)
    fast = _fast_path_ok(model, groups)
    if method == "hooks" and not fast:
        raise ValueError("method='hooks' supports Conv2d (groups=1), Linear and eval-mode "
                         "BatchNorm2d layers only; use method='vmap'")
    if method == "hooks" or (method == "auto" and fast):
        norms = _hooked_norms(model, x, loss, groups)
        if norms is not None:
            return GradientNorms(norms, list(groups))
        if method == "hooks":
            raise ValueError("method='hooks' needs layer outputs that are not modified in place "
                             "(e.g. ReLU(inplace=True) right after a layer); use method='vmap'")
    names = [n for group in groups.values() for n in group]
    grads = per_sample_gradients(model, x, lambda z: confounding_loss(z, loss), params=names,
                                 chunk_size=chunk_size)
    norms = torch.stack([sum(grads[n].flatten(1).square().sum(1) for n in group)
                         for group in groups.values()], dim=1)
    return GradientNorms(norms.detach(), list(groups))
