"""Device invariance: every method keeps tensors on the input's device and agrees with the CPU.

On a machine without a GPU only the CPU case runs; with CUDA present the same checks compare
the GPU results with the CPU ones (every method works unchanged on CUDA when present).
"""

from __future__ import annotations

import pytest
import torch

from tutorial_utils import cam, evaluation, gradients, information, saliency
from tutorial_utils.architectures import SmallCNN

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

MAP_METHODS = {
    "grad_cam": lambda m, x: cam.grad_cam(m, x),
    "grad_cam_pp": lambda m, x: cam.grad_cam_pp(m, x),
    "counterfactual_cam": lambda m, x: cam.counterfactual_cam(m, x),
    "contrast_cam": lambda m, x: cam.contrast_cam(m, x, contrast=3),
    "contrast_cam_all": lambda m, x: cam.contrast_cam_all(m, x),
    "vanilla_gradient": lambda m, x: saliency.vanilla_gradient(m, x),
    "guided_backprop": lambda m, x: saliency.guided_backprop(m, x),
    "smoothgrad": lambda m, x: saliency.smoothgrad(m, x, n_samples=4, seed=0),
    "occlusion": lambda m, x: saliency.occlusion(m, x, window=12, stride=12),
    "rise": lambda m, x: saliency.rise(m, x, n_masks=16, seed=0),
    "shape": lambda m, x: saliency.shape(m, x, n_masks=16, seed=0),
    "contrast_gradients": lambda m, x: gradients.contrast_gradients(m, x),
    "confounding_norms": lambda m, x: gradients.confounding_gradient_norms(m, x).norms,
    "fisher_diag": lambda m, x: information.fisher_information(m, x, seed=0),
    "deletion": lambda m, x: evaluation.deletion_curve(m, x, torch.rand(x.shape[0], 48, 48,
                                                       generator=torch.Generator().manual_seed(0))
                                                       .to(x.device), steps=8).probs,
}


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    model = SmallCNN(3, 14).eval()
    # give BatchNorm non-trivial statistics so outputs are not near-constant
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    return model, x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", sorted(MAP_METHODS))
def test_results_stay_on_the_input_device_and_match_cpu(method, device, model_and_input):
    model, x = model_and_input
    reference = MAP_METHODS[method](model, x)
    moved = model.to(device)
    try:
        out = MAP_METHODS[method](moved, x.to(device))
    finally:
        model.to("cpu")
    assert out.device.type == device
    torch.testing.assert_close(out.cpu(), reference, atol=1e-4, rtol=1e-4)
