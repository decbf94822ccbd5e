"""Attention rollout (Abnar & Zuidema 2020): the transformer-native baseline map.

``attention_rollout(model, x, target=None, layer=None, *, residual=0.5, raw=False)`` follows the
explainer contract of :mod:`tutorial_utils.explainers` (registered there as
``"attention rollout"``); it explains no class — rollout reads the attention, not a gradient —
so ``target`` is accepted and ignored, and ``layer`` must be ``None`` (it uses every block).

``nn.TransformerEncoderLayer`` calls its ``self_attn`` with ``need_weights=False`` (and, in
eval mode without hooks or gradients, does not call it at all: it runs PyTorch's fused encoder
kernel). :func:`attention_probabilities` therefore registers, on every block's ``self_attn``,

* a forward **pre**-hook (``with_kwargs=True``) that turns the call into
  ``self_attn(q, k, v, ..., need_weights=True, average_attn_weights=False)`` — the block
  still uses element ``[0]`` of the result, the attention output, so nothing else changes;
* a forward hook that stores element ``[1]``, the per-head probabilities ``P`` (B, H, N, N)
  with ``N = 1 + h·w`` tokens (class token first) and rows summing to 1.

Any hook on a block's submodule switches that block to its ordinary (non-fused) modules, so
the recorded ``P`` is the one the forward pass used (``tests/test_vit_prototype.py`` rebuilds
each block's output from ``P`` and checks the model's logits are unchanged).

Rollout: with head-averaged attention ``A_l`` (B, N, N) of block ``l``, the residual stream is
modelled as ``Ã_l = ½ A_l + ½ I`` (rows re-normalised to 1) and the attention from the input
tokens to the last block's tokens is ``R = Ã_L ··· Ã_2 Ã_1`` (B, N, N), again row-stochastic.
The map is the class token's row ``R[:, 0, 1:]`` on the token grid (B, h, w), upsampled
bilinearly to the image and min-max normalised like every CAM of the course.

References
----------
- S. Abnar, W. Zuidema, "Quantifying attention flow in transformers", ACL 2020.
- J. Gildenblat, vit-explain / pytorch-grad-cam (rollout on torch ViTs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import check_inputs, check_number
from tutorial_utils.forward import normalize_maps
from tutorial_utils.utils import preserved_state

__all__ = ["encoder_blocks", "attention_probabilities", "rollout_matrix", "attention_rollout"]


def encoder_blocks(model: nn.Module) -> list[nn.TransformerEncoderLayer]:
    """The model's ``nn.TransformerEncoderLayer`` blocks in ``modules()`` (= forward) order.

    ``TypeError`` for a model without any (rollout needs attention layers).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    blocks = [m for m in model.modules() if isinstance(m, nn.TransformerEncoderLayer)]
    if not blocks:
        raise TypeError(f"{type(model).__name__} has no nn.TransformerEncoderLayer; attention "
                        "rollout needs a transformer (e.g. architectures.SignViT)")
    return blocks


@contextlib.contextmanager
def attention_probabilities(model: nn.Module) -> Iterator[list]:
    """Record every block's attention probabilities during the forward passes in the body.

    Yields a list with one entry per block (forward order), filled by each call with a tensor
    ``(B, heads, N, N)``: ``P[b, i, q, k]`` = weight of key token ``k`` for query token ``q``
    in head ``i`` (rows sum to 1). The hooks are removed on exit, also when the body raises.
    """
    blocks = encoder_blocks(model)
    store: list = [None] * len(blocks)

    def ask_for_weights(_module: nn.Module, args: tuple, kwargs: dict) -> tuple:
        return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

    def keeper(i: int):
        def hook(_module: nn.Module, _args: tuple, output: tuple) -> None:
            store[i] = output[1]
        return hook

    handles = []
    try:
        for i, block in enumerate(blocks):
            handles.append(block.self_attn.register_forward_pre_hook(ask_for_weights,
                                                                     with_kwargs=True))
            handles.append(block.self_attn.register_forward_hook(keeper(i)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def rollout_matrix(model: nn.Module, x: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout ``R = Ã_L ··· Ã_1`` (B, N, N), each row a distribution over tokens.

    ``Ã_l = residual · I + (1 − residual) · mean_heads(P_l)``, rows re-normalised (Abnar &
    Zuidema use ``residual = 0.5``). One forward pass in eval mode (mode restored), no graph.
    """
    check_inputs(model, x)
    residual = check_number(residual, "residual", low=0.0, high=1.0)
    with preserved_state(model), torch.no_grad(), attention_probabilities(model) as probs:
        model(x)
    if any(p is None for p in probs):
        raise ValueError("every attention layer must run in the forward pass")
    n = probs[0].shape[-1]
    eye = torch.eye(n, dtype=probs[0].dtype, device=probs[0].device)
    r = eye.expand(x.shape[0], n, n)
    for p in probs:  # a loop over the L blocks, not over samples
        a = residual * eye + (1 - residual) * p.mean(dim=1)
        r = (a / a.sum(dim=-1, keepdim=True)) @ r
    return r


def attention_rollout(model: nn.Module, x: torch.Tensor, target=None, layer: None = None, *,
                      residual: float = 0.5, raw: bool = False) -> torch.Tensor:
    """Attention-rollout maps (B, H, W) in [0, 1]: how much the class token draws on each patch.

    The explainer contract ``fn(model, x, target, layer, **options)``: rollout is
    class-agnostic, so ``target`` is not used (the same map explains every class — a known
    limitation of the method, Chefer et al. 2021), and ``layer`` must be ``None`` (every block
    enters the product).

    ``model`` must expose ``token_grid`` (h, w) with its tokens ordered [class; h·w patches
    row-major] (:class:`~tutorial_utils.architectures.SignViT`). ``raw=True`` returns the
    class-token row of :func:`rollout_matrix` on the grid, (B, h, w), un-normalised (its
    entries plus the class token's own weight sum to 1).
    """
    if layer is not None:
        raise ValueError("layer must be None for attention rollout (it multiplies the "
                         "attention of every block)")
    grid = getattr(model, "token_grid", None)
    if not (isinstance(grid, tuple) and len(grid) == 2):
        raise TypeError("model must expose token_grid = (h, w), the patch-token grid "
                        "(e.g. architectures.SignViT)")
    r = rollout_matrix(model, x, residual)
    if r.shape[-1] != 1 + grid[0] * grid[1]:
        raise ValueError(f"the attention has {r.shape[-1]} tokens, expected 1 + h·w = "
                         f"{1 + grid[0] * grid[1]} for token_grid {grid}")
    maps = r[:, 0, 1:].unflatten(1, grid)
    if raw:
        return maps
    up = F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
    return normalize_maps(up)[:, 0]
