"""Your own model and your own photos: a torchvision ResNet-18 and VGG-11 (random weights,
offline) on scikit-image's photos through every method of the course, and README's snippet."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

skimage_data = pytest.importorskip("skimage.data")

from tutorial_utils import data, detection, evaluation, explainers, models, trust  # noqa: E402
from tutorial_utils.architectures import Ensemble  # noqa: E402
from tutorial_utils.layers import default_target_layer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZE = 64  # small: the methods do not care, and the test stays quick on 2 cores

# a few methods are sampled; fewer samples keep the run short without changing what is tested
FAST_OPTIONS = {"RISE": {"n_masks": 32}, "SHAPE": {"n_masks": 32}, "SmoothGrad": {"n_samples": 4},
                "occlusion": {"window": 16, "stride": 16}}


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return data.load_images([skimage_data.astronaut(), skimage_data.chelsea(),
                             skimage_data.coffee()], SIZE)


def _resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None)


def _vgg11() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.vgg11(weights=None, num_classes=10)  # 10 classes: VOICE stays quick


@pytest.fixture(scope="module", params=["resnet18", "vgg11"])
def own_model(request) -> nn.Module:
    net = _resnet18() if request.param == "resnet18" else _vgg11()
    return models.with_normalization(net, IMAGENET_MEAN, IMAGENET_STD).eval()


# --------------------------------------------------------------------------- the wrapper


def test_with_normalization_puts_the_normalisation_inside(photos):
    net = _resnet18().eval()
    model = models.with_normalization(net, IMAGENET_MEAN, IMAGENET_STD)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(photos), net((photos - mean) / std))
    assert model.model is net  # wrapped, not copied
    assert model.target_layer is net.layer4[-1] is default_target_layer(model)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in net.parameters())


def test_with_normalization_reads_torchvision_weights_without_downloading():
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    for source in (weights, weights.transforms()):
        model = models.with_normalization(_resnet18(), weights=source)
        torch.testing.assert_close(model.normalize.mean.flatten(), torch.tensor(IMAGENET_MEAN))
        torch.testing.assert_close(model.normalize.std.flatten(), torch.tensor(IMAGENET_STD))


def test_with_normalization_keeps_the_model_state():
    net = _resnet18()
    net.layer1.train(False)
    modes = {n: m.training for n, m in net.named_modules()}
    models.with_normalization(net, IMAGENET_MEAN, IMAGENET_STD)
    assert {n: m.training for n, m in net.named_modules()} == modes


@pytest.mark.parametrize("call, error, message", [
    (lambda net: models.with_normalization(net), ValueError, "mean=... and std=..."),
    (lambda net: models.with_normalization(net, IMAGENET_MEAN), ValueError, "mean=... and std"),
    (lambda net: models.with_normalization(net, IMAGENET_MEAN, IMAGENET_STD,
                                           weights=torchvision.models.ResNet18_Weights.DEFAULT),
     ValueError, "not both"),
    (lambda net: models.with_normalization(net, weights="DEFAULT"), TypeError, "weights must be"),
    (lambda net: models.with_normalization(net, 0.5, 0.2), TypeError, "mean must be a sequence"),
    (lambda net: models.with_normalization(net, (0.5, 0.5), IMAGENET_STD), ValueError,
     "one value per channel"),
    (lambda net: models.with_normalization(net, IMAGENET_MEAN, (0.2, 0.0, 0.2)), ValueError,
     "std"),
    (lambda net: models.with_normalization("resnet", IMAGENET_MEAN, IMAGENET_STD), TypeError,
     "model must be a torch.nn.Module"),
])
def test_with_normalization_bad_input(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(_resnet18())


def test_a_normalised_tensor_is_refused_with_the_wrapper_named(photos):
    model = models.with_normalization(_resnet18(), IMAGENET_MEAN, IMAGENET_STD).eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    normalised = (photos - mean) / std
    with pytest.raises(ValueError, match=r"x looks normalised.*models\.with_normalization"):
        explainers.explain("Grad-CAM", model, normalised)
    with pytest.raises(ValueError, match="divide by 255"):  # 8-bit values keep their advice
        explainers.explain("Grad-CAM", model, photos * 255)


# --------------------------------------------------------------------------- your photos


def test_load_images_from_arrays_files_and_a_folder(tmp_path):
    from PIL import Image

    cat, grey = skimage_data.chelsea(), skimage_data.camera()
    Image.fromarray(cat).save(tmp_path / "b_cat.png")
    Image.fromarray(grey).save(tmp_path / "a_grey.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    x = data.load_images(tmp_path, 32)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    torch.testing.assert_close(x[0, 0], x[0, 1])  # grey (sorted first) -> three equal channels
    one = data.load_images(tmp_path / "b_cat.png", 32)
    torch.testing.assert_close(one[0], x[1])
    from_array = data.load_images([cat], 32)
    torch.testing.assert_close(from_array, one, atol=1 / 255, rtol=0)  # png round trip: exact
    floats = data.load_images([cat.astype(np.float32) / 255, Image.fromarray(cat)], 32)
    torch.testing.assert_close(floats[0], floats[1], atol=1 / 255, rtol=0)
    wide = data.load_images([np.zeros((20, 60, 3), np.uint8)], 16)  # shorter side, centre crop
    assert wide.shape == (1, 3, 16, 16)


@pytest.mark.parametrize("source, error, message", [
    ([], ValueError, "empty list"),
    (3, TypeError, "paths_or_folder must be"),
    (["/no/such/photo.png"], FileNotFoundError, "no image file"),
    ([np.zeros((4, 4, 3), np.int64)], ValueError, "uint8 or a float array in [0, 1]"),
    ([np.full((4, 4, 3), 2.0)], ValueError, "float array in [0, 1]"),
    ([np.zeros((4, 4, 2), np.uint8)], ValueError, "(H, W, 1|3|4)"),
    ([object()], TypeError, "paths_or_folder[0] must be"),
])
def test_load_images_bad_input(source, error, message):
    with pytest.raises(error, match=re.escape(message)):
        data.load_images(source, 32)


def test_load_images_bad_files_and_sizes(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not an image PIL can read"):
        data.load_images(tmp_path / "broken.png", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image file"):
        data.load_images(tmp_path / "empty", 32)
    with pytest.raises(ValueError, match="size must be at least 8"):
        data.load_images([skimage_data.chelsea()], 4)
    with pytest.raises((TypeError, ValueError), match="size"):
        data.load_images([skimage_data.chelsea()], 0)


# --------------------------------------------------------------------------- every method


def _is_map_batch(maps: torch.Tensor, x: torch.Tensor) -> bool:
    return (maps.shape == (x.shape[0], *x.shape[-2:]) and bool(torch.isfinite(maps).all())
            and float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6)


def test_every_explainer_runs_on_your_model(own_model, photos):
    for name in explainers.EXPLAINERS:
        if not explainers.applies_to(name, own_model):  # attention rollout: transformers only
            with pytest.raises(TypeError, match="token_grid"):
                explainers.explain(name, own_model, photos)
            continue
        maps = explainers.explain(name, own_model, photos, **FAST_OPTIONS.get(name, {}))
        assert _is_map_batch(maps, photos), name
    contrast = explainers.explain("ContrastCAM", own_model, photos, contrast=3)
    assert _is_map_batch(contrast, photos)


def test_every_score_fits_and_scores_on_your_model(own_model, photos):
    # fit on each photo and two variants of it (mirrored, darkened) as one class each: a
    # feature-distance score needs variance within a class (one image per class is refused)
    fit_x = torch.cat([photos, photos.flip(-1), 0.8 * photos])
    labels = torch.arange(len(photos)).repeat(3)
    noise = torch.rand(len(photos), 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    has_dropout = any(isinstance(m, nn.Dropout) for m in own_model.modules())
    for name, make in detection.SCORES.items():
        if name == "ensemble (−MI)":
            detector = make(Ensemble([own_model, models.with_normalization(
                _vgg11() if has_dropout else _resnet18(), IMAGENET_MEAN, IMAGENET_STD).eval()]))
            detector.fit(fit_x)
        elif name == "gradient detector H":
            detector = make(own_model).fit(fit_x, x_novel=noise)
        elif name == "MC dropout (−MI)":
            if not has_dropout:  # ResNet-18 has none: the score says so and why
                with pytest.raises(ValueError, match="no dropout layer"):
                    make(own_model, passes=3).fit(fit_x, labels).score(photos)
                continue
            detector = make(own_model, passes=3).fit(fit_x, labels)
        else:
            detector = make(own_model).fit(fit_x, labels)
        score = detector.score(photos)
        assert score.shape == (len(photos),) and bool(torch.isfinite(score).all()), name


def test_gradtrust_voice_insertion_deletion_and_sanity_on_your_model(own_model, photos):
    trust_scores = trust.gradtrust(own_model, photos)
    assert trust_scores.shape == (3,) and bool((trust_scores >= 1).all())  # max/mean >= 1
    v = trust.voice(own_model, photos)
    assert _is_map_batch(v.explanation, photos) and _is_map_batch(v.uncertainty, photos)
    assert v.iou.shape == (3,) and bool(((v.iou >= 0) & (v.iou <= 1)).all())
    maps = explainers.explain("Grad-CAM", own_model, photos)
    for curve in (evaluation.deletion_curve(own_model, photos, maps, steps=6),
                  evaluation.insertion_curve(own_model, photos, maps, steps=6)):
        assert curve.probs.shape[0] == 3 and bool(torch.isfinite(curve.probs).all())
        assert bool(torch.isfinite(evaluation.curve_auc(curve.fractions, curve.probs)).all())
    layers = evaluation.randomization_layers(own_model)[:2]
    check = evaluation.sanity_check(own_model, photos[:2], "Grad-CAM", layers=layers)
    assert check.stages[0] == "original" and check.correlation.shape == (3, 2)
    torch.testing.assert_close(check.correlation[0].double(), torch.ones(2, dtype=torch.float64))


# --------------------------------------------------------------------------- README


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it on your own model", 1)
    assert len(section) == 2, "README lost its section 'Use it on your own model'"
    match = re.search(r"```python\n(.*?)```", section[1].split("\n## ", 1)[0], re.S)
    assert match, "the section 'Use it on your own model' has no python code block"
    return match.group(1)


def test_readme_snippet_runs_as_printed():
    code = _readme_snippet()
    assert "weights=None" in code  # offline: no pretrained download in the course's own test
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # exactly as printed
    assert namespace["maps"].shape == (2, 224, 224)
    assert namespace["scores"].shape == (2,)
    assert isinstance(namespace["model"], models.Normalized)
