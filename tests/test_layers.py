"""Target layers and layer gradients: defaults, hooks, batch = single = loop."""

from __future__ import annotations

import pytest
import torch
from _helpers import random_images
from torch import nn

from tutorial_utils import forward, layers

K = 14


def test_layer_gradients_batch_equals_single_and_loop(small):
    x = random_images(3)
    acts, grads = layers.layer_activations_and_gradients(small, x, target=[1, 4, 9])
    assert acts.shape == grads.shape == (3, 64, 12, 12)
    for i, t in enumerate([1, 4, 9]):
        a1, g1 = layers.layer_activations_and_gradients(small, x[i:i + 1], target=t)
        torch.testing.assert_close(a1[0], acts[i])
        torch.testing.assert_close(g1[0], grads[i])


def test_score_fn_and_logit_jacobian_agree(small):
    x = random_images(2)
    acts, jac, z = layers.layer_logit_gradients(small, x)
    assert jac.shape == (2, K, 64, 12, 12)
    torch.testing.assert_close(z, small(x))
    for k in (0, 7, 13):
        _, g = layers.layer_activations_and_gradients(small, x,
                                                 score_fn=lambda logits, k=k: logits[:, k])
        torch.testing.assert_close(jac[:, k], g)
    with pytest.raises(ValueError, match="score_fn"):
        layers.layer_activations_and_gradients(small, x, score_fn=lambda logits: logits.sum())
    with pytest.raises(ValueError, match="not both"):
        layers.layer_activations_and_gradients(small, x, target=1, score_fn=lambda z: z[:, 0])


def test_capture_layer_removes_its_hook_on_error(small):
    with pytest.raises(RuntimeError, match="boom"):
        with forward.capture_layer(small.last_conv):
            raise RuntimeError("boom")
    assert len(small.last_conv._forward_hooks) == 0


def test_default_layer_errors():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match="pass layer="):
        layers.default_target_layer(mlp)
    with pytest.raises(TypeError, match="model must be"):
        layers.default_target_layer("resnet")
