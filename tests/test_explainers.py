"""The explainer registry: one call shape for every method, entries equal to the direct calls."""

from __future__ import annotations

import inspect

import pytest
import torch
from _helpers import random_images

from tutorial_utils import cam, evaluation, explainers, forward, rollout, saliency

FAST = {  # small option sets, the same for the registry call and the direct call
    "SmoothGrad": dict(n_samples=3),
    "occlusion": dict(window=6, stride=3),
    "RISE": dict(n_masks=8, cells=4),
    "SHAPE": dict(n_masks=8, cells=4),
}

DIRECT = {  # how a learner calls each method by hand, keywords spelt out
    "Grad-CAM": lambda m, x, t, **o: cam.grad_cam(m, x, target=t, **o),
    "Grad-CAM++": lambda m, x, t, **o: cam.grad_cam_pp(m, x, target=t, **o),
    "CounterfactualCAM": lambda m, x, t, **o: cam.counterfactual_cam(m, x, target=t, **o),
    "ContrastCAM": lambda m, x, t, **o: cam.contrast_cam(m, x, target=t, **o),
    "vanilla gradient": lambda m, x, t, **o: saliency.vanilla_gradient(m, x, target=t, **o),
    "guided backprop": lambda m, x, t, **o: saliency.guided_backprop(m, x, target=t, **o),
    "SmoothGrad": lambda m, x, t, **o: saliency.smoothgrad(m, x, target=t, **o),
    "occlusion": lambda m, x, t, **o: saliency.occlusion(m, x, target=t, **o),
    "RISE": lambda m, x, t, **o: saliency.rise(m, x, target=t, **o),
    "SHAPE": lambda m, x, t, **o: saliency.shape(m, x, target=t, **o),
    "contrast input gradient": lambda m, x, t, **o: saliency.contrast_input_gradient(
        m, x, target=t, **o),
    "attention rollout": lambda m, x, t, **o: rollout.attention_rollout(m, x, target=t, **o),
    "random map": lambda m, x, t, **o: explainers.random_map(m, x, target=t, **o),
    "image itself": lambda m, x, t, **o: explainers.image_itself(m, x, target=t, **o),
}


def test_every_entry_has_a_direct_call():
    assert list(DIRECT) == list(explainers.EXPLAINERS)
    assert set(explainers.CONTRASTIVE) | set(explainers.CONTROLS) <= set(explainers.EXPLAINERS)


@pytest.mark.parametrize("name", list(explainers.EXPLAINERS))
def test_the_call_shape_is_model_x_target_layer(name):
    params = list(inspect.signature(explainers.EXPLAINERS[name]).parameters.values())
    assert [p.name for p in params[:4]] == ["model", "x", "target", "layer"]
    assert params[2].default is None and params[3].default is None
    assert all(p.kind is p.KEYWORD_ONLY for p in params[4:]), "options are keyword-only"


@pytest.mark.parametrize("name", list(explainers.EXPLAINERS))
def test_a_positional_registry_call_equals_the_direct_call(name, small):
    """``entry(model, x, target)`` — how sanity_check calls an explainer — gives exactly the map
    of the direct call with keywords, also through ``explain`` and ``bind``."""
    x = random_images(4, 24)
    fn, options = explainers.EXPLAINERS[name], FAST.get(name, {})
    target = torch.tensor([0, 5, 13, 7])
    if name in explainers.TRANSFORMER_ONLY:  # on the ViT: tests/test_vit.py
        assert not explainers.applies_to(name, small)
        with pytest.raises(TypeError, match="token_grid"):
            fn(small, x, target, None, **options)
        return
    maps = fn(small, x, target, None, **options)
    assert maps.shape == (4, 24, 24) and maps.min() >= 0 and maps.max() <= 1
    torch.testing.assert_close(maps, DIRECT[name](small, x, target, **options), rtol=0, atol=0)
    torch.testing.assert_close(explainers.explain(name, small, x, target, **options), maps,
                               rtol=0, atol=0)
    torch.testing.assert_close(explainers.bind(name, **options)(small, x, target), maps,
                               rtol=0, atol=0)


def test_contrast_cam_takes_the_explained_class_third_and_the_contrast_as_a_keyword(tiny, x8):
    z = tiny(x8).detach()
    runner_up = z.topk(2, dim=1).indices[:, 1]
    torch.testing.assert_close(cam.contrast_cam(tiny, x8), cam.contrast_cam(
        tiny, x8, contrast=runner_up))
    q = torch.tensor([3] * 8)
    torch.testing.assert_close(cam.contrast_cam(tiny, x8, None, None, contrast=q),
                               cam.grad_cam(tiny, x8, forward.contrast_target(q)))
    # the input-space analogue is the vanilla gradient of the same callable target
    torch.testing.assert_close(saliency.contrast_input_gradient(tiny, x8, contrast=q),
                               saliency.vanilla_gradient(tiny, x8, forward.contrast_target(q)))


def test_callable_targets_work_for_every_kind_of_method(tiny, x8):
    """A callable on the logits that scores a class equals that class as a target."""
    def logit_of_2(z):
        return z[:, 2]

    def prob_of_2(z):
        return z.softmax(1)[:, 2]

    for name in ("Grad-CAM", "vanilla gradient", "SmoothGrad"):
        torch.testing.assert_close(explainers.explain(name, tiny, x8, logit_of_2, **FAST.get(
            name, {})), explainers.explain(name, tiny, x8, 2, **FAST.get(name, {})))
    for name in ("occlusion", "RISE"):  # perturbation methods score p_t by default
        torch.testing.assert_close(explainers.explain(name, tiny, x8, prob_of_2, **FAST[name]),
                                   explainers.explain(name, tiny, x8, 2, **FAST[name]))


def test_sanity_check_takes_a_registry_name_and_includes_contrast_cam(tiny, x8):
    by_name = evaluation.sanity_check(tiny, x8, "ContrastCAM", seed=0)
    by_fn = evaluation.sanity_check(tiny, x8, explainers.EXPLAINERS["ContrastCAM"], seed=0)
    torch.testing.assert_close(by_name.correlation, by_fn.correlation)
    torch.testing.assert_close(by_name.correlation[0], torch.ones(8, dtype=torch.float64))
    occ = evaluation.sanity_check(tiny, x8, "occlusion", options=dict(window=6, stride=3))
    bound = evaluation.sanity_check(tiny, x8, explainers.bind("occlusion", window=6, stride=3))
    torch.testing.assert_close(occ.maps, bound.maps)


def test_explain_all_and_bad_names(tiny, x8):
    maps = explainers.explain_all(tiny, x8, names=["Grad-CAM", "occlusion"],
                                  options={"occlusion": FAST["occlusion"]})
    assert list(maps) == ["Grad-CAM", "occlusion"]
    torch.testing.assert_close(maps["occlusion"], saliency.occlusion(tiny, x8, **FAST["occlusion"]))
    with pytest.raises(ValueError, match="unknown explainer 'LIME'"):
        explainers.explain("LIME", tiny, x8)
    with pytest.raises(ValueError, match="not among names"):
        explainers.explain_all(tiny, x8, names=["Grad-CAM"], options={"RISE": {}})
    with pytest.raises(ValueError, match="layer must be None"):
        saliency.vanilla_gradient(tiny, x8, None, tiny.conv)
    with pytest.raises(TypeError, match="callable"):
        cam.contrast_cam(tiny, x8, lambda z: z[:, 0])


def test_controls_know_nothing_of_the_model(tiny, x8):
    a = explainers.random_map(tiny, x8, seed=1)
    assert torch.equal(a, torch.rand(8, 12, 12, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(explainers.image_itself(None, x8), x8.mean(1))
