"""Gradients at inference, once: input gradients, contrast directions, per-sample gradients.

Notation: logits ``z = f(x)`` (B, K), ``p = softmax(z)``, prediction
``P = argmax z``, penultimate features ``h`` (B, D) = the input of the final ``nn.Linear``
with weight ``W`` (K, D) and bias ``b`` (K,). Every gradient here is the gradient **of a loss**
with respect to the network's *parameters* (never an update step ``−η∇``), taken at inference:
the model stays in eval mode, its parameters are not changed, and ``.grad`` fields are never
written. The gradient with respect to the *input* (:func:`input_gradient`) serves the
attacks, ODIN and the input-space saliency maps; :func:`per_sample_gradients` is the one
per-sample engine (``torch.func``) behind the confounding-label norms, the Fisher information,
GradTrust and GradCon. Gradients with respect to a layer's *activations* (the CAM engine) live
in :mod:`tutorial_utils.layers`; score vectors and the Fisher information in
:mod:`tutorial_utils.information`.

==============================  =============================================================
function                        what it returns
==============================  =============================================================
input_gradient                  ``∇ₓ Σ_b loss(f(x))_b`` (B, C, H, W) and the logits
input_gradient_mode             context: eval mode, frozen parameters, gradients switched on
contrast_directions             ``p − e_q = ∂CE(z, q)/∂z`` for every contrast class q (B, Q, K)
contrast_gradients              ``∇_W CE(z, q) = (p − e_q) hᵀ`` for every class q, closed form
contrast_gradients_autograd     the same for any parameters, via ``torch.func`` (vmap over
                                samples and classes)
select_params                   split a model's tensors into chosen parameters and the rest
per_sample_gradients            ``∇_θ loss(f(x_b), x_b[, t_b])`` for every sample, via
                                ``torch.func`` (any module: classifier, layer, autoencoder)
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

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vjp, vmap

from tutorial_utils._checks import (
    check_callable,
    check_classes,
    check_inputs,
    check_matrix,
    check_model,
    check_positive_int,
    require_autograd,
)
from tutorial_utils.forward import capture_layer, features_and_logits, final_linear, logits
from tutorial_utils.utils import channels_last, preserved_state

__all__ = [
    "input_gradient",
    "input_gradient_mode",
    "contrast_directions",
    "contrast_gradients",
    "contrast_gradients_autograd",
    "select_params",
    "per_sample_gradients",
    "CONFOUNDING_LOSSES",
    "check_confounding_loss",
    "confounding_loss",
    "confounding_gradient_norms",
    "GradientNorms",
]

LossFn = Callable[[torch.Tensor], torch.Tensor]


def _class_list(classes: object, num_classes: int, name: str = "classes") -> torch.Tensor:
    """``None`` -> all K classes; an int or a sequence of ints -> (Q,) long tensor in [0, K)."""
    if classes is None:
        return torch.arange(num_classes)
    out = check_classes(classes, None, num_classes, name)
    if out.numel() == 0:
        raise ValueError(f"{name} must name at least one class")
    return out


# --------------------------------------------------------------------------------------
# Input gradients
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def input_gradient_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters, gradients on (even inside ``no_grad`` / ``inference_mode``);
    the model's modes and ``requires_grad`` flags are restored on exit."""
    with torch.inference_mode(False), torch.enable_grad(), preserved_state(model):
        for p in model.parameters():
            p.requires_grad_(False)
        yield


def input_gradient(model: nn.Module, x: torch.Tensor, loss_fn: LossFn, *, check: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``∇ₓ Σ_b loss_fn(f(x))_b`` and the logits ``f(x)``: one forward, one input backward.

    ``loss_fn(z)`` maps logits (B, K) to one value per image (B,) — a loss for an attack, a
    class score for a saliency map. In eval mode images do not interact, so ``g[b] =
    ∂ loss_b / ∂x_b`` (units: loss per pixel intensity). Parameters are frozen during the pass,
    so no parameter gradient is computed or stored; works under ``torch.no_grad()`` and
    ``torch.inference_mode()`` (gradients are switched on locally). The forward pass runs in
    channels-last layout, as every forward pass of the course. ``check=False`` skips the input
    checks (for loops over already-checked images).

    Returns ``(g (B, C, H, W), z (B, K))``, both detached, on ``x``'s device.
    """
    if check:
        check_inputs(model, x)
        check_callable(loss_fn, "loss_fn")
    with input_gradient_mode(model):
        xg = x.detach()
        if torch.is_inference(xg):
            xg = xg.clone()
        xg = channels_last(xg).requires_grad_(True)
        z = model(xg)
        loss = loss_fn(z)
        if not isinstance(loss, torch.Tensor) or loss.shape != (x.shape[0],):
            raise ValueError(f"loss_fn must return one loss per image, shape ({x.shape[0]},)")
        (g,) = torch.autograd.grad(loss.sum(), xg)
    return g, z.detach()


# --------------------------------------------------------------------------------------
# Contrast directions and contrast gradients
# --------------------------------------------------------------------------------------


def contrast_directions(logits: torch.Tensor, classes: torch.Tensor | None = None, *,
                        normalize: bool = False) -> torch.Tensor:
    """``u`` (B, Q, K) with ``u[:, i] = p − e_{q_i} = ∂CE(z, q_i)/∂z`` (``p = softmax(z)``).

    ``classes`` (Q,) long: the contrast classes (default: all K, ``Q = K``). Row ``q_i`` of
    ``u[:, i]`` is ``p_q − 1 ≤ 0``, every other entry ``p_k ≥ 0``. With ``normalize`` each
    direction is divided by its norm ``‖p − e_q‖`` (clamped at 1e-12).
    """
    k = logits.shape[-1]
    eye = torch.eye(k, dtype=logits.dtype, device=logits.device)
    onehot = eye if classes is None else eye[classes.to(logits.device)]
    u = logits.softmax(dim=-1)[:, None, :] - onehot[None]
    return u / u.norm(dim=2, keepdim=True).clamp_min(1e-12) if normalize else u


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
    h, z = features_and_logits(model, x, None)
    q = _class_list(classes, z.shape[1]).to(z.device)
    u = contrast_directions(z, q)  # (B, Q, K)
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


def _output_fn(model: nn.Module, rest: dict) -> Callable:
    """``f(params, x_b) -> f(x_b)`` for one input ``x_b`` (no batch dimension), via
    ``functional_call``: the logits (K,) of a classifier, the reconstruction of an
    autoencoder, the output of a layer."""

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
    num_classes = logits(model, x[:1], check=False).shape[1]
    q = _class_list(classes, num_classes).to(x.device)
    f = _output_fn(model, rest)

    def per_sample(xb: torch.Tensor) -> dict:
        z, pullback = vjp(lambda prm: f(prm, xb), selected)
        u = contrast_directions(z[None], q)[0]  # (Q, K)
        return vmap(pullback)(u)[0]

    with preserved_state(model):
        return vmap(per_sample, chunk_size=chunk_size)(x.detach())


def _check_batch(model: nn.Module, x: object) -> torch.Tensor:
    """Images (B, C, H, W) for ``model`` (:func:`check_inputs`) or finite features (B, D)."""
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return check_inputs(model, x)
    check_model(model)
    return check_matrix(x, "x", "(B, C, H, W) images or (B, D) features")


def per_sample_gradients(model: nn.Module, x: torch.Tensor, loss_fn: Callable, targets=None,
                         params=None, *, chunk_size: int | None = None,
                         return_loss: bool = False):
    """``∇_θ loss_fn(f(x_b), x_b[, t_b])`` for every sample b, vectorised with ``torch.func``.

    The one per-sample gradient engine of the package. ``model`` is any module — a
    classifier, one layer of it, an autoencoder — and ``x`` a batch of its inputs: images
    (B, C, H, W) with pixels in [0, 1], or features (B, D). ``loss_fn(output, x_b)`` maps one
    sample's output (no batch dimension: logits (K,), a reconstruction (C, H, W), …) and that
    sample's input to a scalar; with ``targets`` (one entry per sample) it is called as
    ``loss_fn(output, x_b, t_b)``. ``params`` selects θ (:func:`select_params`): ``None``
    (the final ``nn.Linear``), ``"all"``, a submodule, a parameter name, or a sequence of
    names / submodules. The model runs in eval mode (BatchNorm uses running statistics,
    dropout is off), so samples are independent: the result equals B separate backward
    passes, without writing any ``.grad``.

    Returns ``{name: (B, *param.shape)}``; with ``return_loss`` the pair ``(grads, losses)``
    with ``losses`` (B,) the per-sample values of ``loss_fn`` (detached).
    """
    _check_batch(model, x)
    check_callable(loss_fn, "loss_fn")
    chunk_size = None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    if targets is not None and (not isinstance(targets, torch.Tensor) or targets.dim() == 0
                                or len(targets) != len(x)):
        raise ValueError(f"targets must be a tensor with one entry per sample ({len(x)}), got "
                         f"{getattr(targets, 'shape', type(targets).__name__)}")
    selected, rest = select_params(model, params)
    f = _output_fn(model, rest)

    def scalar(value: object) -> torch.Tensor:
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            raise ValueError("loss_fn must return one scalar per sample (it gets one sample's "
                             f"output, e.g. logits (K,)), got "
                             f"{getattr(value, 'shape', type(value).__name__)}")
        return value

    def loss(prm: dict, xb: torch.Tensor, *tb: torch.Tensor) -> torch.Tensor:
        return scalar(loss_fn(f(prm, xb), xb, *tb))

    args = (x.detach(),) if targets is None else (x.detach(), targets)
    engine = vmap(grad_and_value(loss) if return_loss else grad(loss),
                  in_dims=(None, *(0 for _ in args)), chunk_size=chunk_size)
    with preserved_state(model), torch.enable_grad():
        out = engine(selected, *args)
    if return_loss:
        grads, values = out
        return {n: g.detach() for n, g in grads.items()}, values.detach()
    return out


CONFOUNDING_LOSSES = ("sigmoid", "softmax")


def check_confounding_loss(loss: object) -> str:
    """``loss`` if it names a confounding loss (:data:`CONFOUNDING_LOSSES`)."""
    if loss not in CONFOUNDING_LOSSES:
        raise ValueError(f"loss must be one of {CONFOUNDING_LOSSES}, got {loss!r}")
    return loss


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
    if check_confounding_loss(loss) == "sigmoid":
        return -F.logsigmoid(z).sum(-1)
    return -z.log_softmax(-1).sum(-1)


class GradientNorms(NamedTuple):
    """``norms`` (B, L): squared L2 norm of each layer's parameter gradient per sample;
    ``names`` (L,): the layers' qualified module names."""

    norms: torch.Tensor
    names: list[str]


def _layer_groups(model: nn.Module, layers: Sequence[nn.Module] | None) -> dict[str, list[str]]:
    """Module name -> parameter names of each layer group.

    ``layers=None``: every module that owns parameters, with its own (non-recursive) ones.
    Given ``layers``: each selected module with *all* its parameters, recursively — so a
    container such as a transformer block (``vit.blocks[0]``, whose parameters live in its
    attention, MLP and norms) is one group.
    """
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
               for n, p in module.named_parameters(recurse=wanted is not None)]
        if own:
            groups[mod_name] = own
    if not groups:
        raise ValueError("layers must hold at least one module with parameters of model")
    return groups


_FAST_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def _conv_weight_grads(conv: nn.Conv2d, inp: torch.Tensor, gout: torch.Tensor) -> torch.Tensor:
    """Per-sample weight gradients (B, C_out, C_in, kh, kw) of a ``groups=1`` convolution.

    ``inp`` (B, C_in, H, W) is the layer's input and ``gout`` (B, C_out, H', W') the gradient of
    the summed loss with respect to its output. The batch is folded into the channels,
    ``(1, B·C_in, H, W)``, so the B samples become the B groups of one grouped convolution; the
    weight gradient of that convolution *is* the stack of per-sample weight gradients
    (Rochette et al. 2019). One call to PyTorch's own weight-gradient kernel, no im2col matrix.
    """
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
    """True when every selected layer has a closed-form per-sample norm (see above) and is
    called as a module (an attention's ``out_proj`` is not: ``nn.MultiheadAttention`` reads its
    weights directly, so no hook would see it)."""
    modules = dict(model.named_modules())
    unhooked = {id(m.out_proj) for m in modules.values() if isinstance(m, nn.MultiheadAttention)}
    for name in groups:
        m = modules[name]
        if not isinstance(m, _FAST_LAYERS) or id(m) in unhooked:
            return False
        if isinstance(m, nn.Conv2d) and (
                m.groups != 1 or isinstance(m.padding, str) or m.padding_mode != "zeros"):
            return False
        if isinstance(m, nn.BatchNorm2d) and (m.training or not m.track_running_stats):
            return False
    return True


def _hooked_norms(model: nn.Module, x: torch.Tensor, loss: str,
                  groups: dict[str, list[str]]) -> torch.Tensor | None:
    """(B, L) squared norms from one forward and one backward, or None when a selected layer's
    input or output is changed in place later in the forward (its gradient would then be the
    wrong one).

    The hooks of :func:`tutorial_utils.forward.capture_layer` keep each layer's input and
    output (and their version counters); ``autograd.grad`` then asks for the gradients of the
    summed loss with respect to those outputs only (no parameter or input gradient).
    """
    modules = dict(model.named_modules())
    with contextlib.ExitStack() as stack, preserved_state(model), torch.enable_grad():
        stores = {name: stack.enter_context(capture_layer(modules[name])) for name in groups}
        for p in model.parameters():
            p.requires_grad_(False)
        z = model(channels_last(x.detach().clone().requires_grad_(True)))
        for name, store in stores.items():
            if store["calls"] != 1:
                raise ValueError(f"layer {name!r} must run exactly once in the forward pass")
        for store in stores.values():
            if (store["input"]._version, store["output"]._version) != store["versions"]:
                return None  # changed in place after the layer ran
        outs = [stores[name]["output"] for name in groups]
        gouts = torch.autograd.grad(confounding_loss(z, loss).sum(), outs, allow_unused=True)
    norms = []
    for name, out, gout in zip(groups, outs, gouts, strict=True):
        gout = torch.zeros_like(out) if gout is None else gout
        norms.append(_module_sq_norms(modules[name], stores[name]["input"].detach(), gout))
    return torch.stack(norms, dim=1)


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
        layers: modules whose parameters (recursively: a block is one group) form the L groups
            (default: every module that owns parameters, e.g. each conv, BatchNorm and linear
            layer; for a transformer also the attention, its ``out_proj`` and the norms).

    Returns:
        :class:`GradientNorms` ``(norms (B, L), names)`` on x's device, units of loss².
    """
    check_inputs(model, x)
    if method in ("auto", "hooks"):
        require_autograd("confounding_gradient_norms")
    if method not in ("auto", "hooks", "vmap"):
        raise ValueError(f"method must be 'auto', 'hooks' or 'vmap', got {method!r}")
    check_confounding_loss(loss)
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
    with warnings.catch_warnings():  # vmap over attention falls back to a loop: slower, exact
        warnings.filterwarnings("ignore", message="There is a performance drop because we have "
                                "not yet implemented the batching rule")
        grads = per_sample_gradients(model, x, lambda z, _xb: confounding_loss(z, loss),
                                     params=names, chunk_size=chunk_size)
    norms = torch.stack([sum(grads[n].flatten(1).square().sum(1) for n in group)
                         for group in groups.values()], dim=1)
    return GradientNorms(norms.detach(), list(groups))
