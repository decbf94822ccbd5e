"""The course's architectures: a small VGG-style CNN and a deep ensemble of them.

Every zoo classifier has the same anatomy (DESIGN §5)::

    normalize -> features -> last_conv (the CAM target layer, map >= 6x6)
              -> global average pool -> dropout -> fc (the single final nn.Linear, W of (K, D))

``model.penultimate(x)`` returns the pooled features ``h`` of shape ``(B, D)`` so that
``model.fc(h) == model(x)`` in eval mode. Inputs are images with pixels in ``[0, 1]``; the
model normalises them in its first layer.

References
----------
- K. Simonyan, A. Zisserman, "Very deep convolutional networks for large-scale image
  recognition", ICLR 2015 (VGG-style stacks of 3x3 convolutions).
- B. Lakshminarayanan, A. Pritzel, C. Blundell, "Simple and scalable predictive uncertainty
  estimation using deep ensembles", NeurIPS 2017.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["conv_bn_relu", "Normalize", "SmallCNN", "Ensemble"]


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (same padding) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=False),
    )


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as the model's first layer.

    Keeping normalisation inside the model lets every course function work in one image
    space: pixels in ``[0, 1]``, the range that data loaders, challenges and plots use.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """A small VGG-style classifier.

    Args:
        in_channels: 1 for digits, 3 for signs.
        num_classes: K, the number of outputs of ``fc``.
        widths: channels of the three stages; stages 1 and 2 end with 2x2 max pooling,
            stage 3 is ``last_conv`` and keeps the resolution (input / 4).
        dropout: dropout probability before ``fc``.
        mean, std: per-channel statistics of the training images (``Normalize`` layer).

    Input ``(B, in_channels, H, W)`` images with pixels in ``[0, 1]``; output logits ``(B, K)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, int, int] = (16, 32, 64),
        dropout: float = 0.3,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.normalize = Normalize(mean or (0.5,) * in_channels, std or (0.25,) * in_channels)
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, w1),
            nn.MaxPool2d(2),
            conv_bn_relu(w1, w2),
            conv_bn_relu(w2, w2),
            nn.MaxPool2d(2),
        )
        self.last_conv = nn.Sequential(conv_bn_relu(w2, w3), conv_bn_relu(w3, w3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w3, num_classes)

    @property
    def target_layer(self) -> nn.Module:
        """The default layer for CAM methods: the last convolutional block."""
        return self.last_conv

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``h`` of shape ``(B, D)``, before dropout and ``fc``."""
        return self.pool(self.last_conv(self.features(self.normalize(x)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.penultimate(x)))


class Ensemble(nn.Module):
    """Deep ensemble (Lakshminarayanan et al. 2017) of classifiers with the same classes.

    ``forward`` returns ``log(mean_m softmax(z_m))`` of shape ``(B, K)``, so that
    ``softmax(forward(x))`` is the ensemble's predictive distribution; the members'
    own logits are ``member_logits(x)`` of shape ``(M, B, K)``.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("members must hold at least one model")
        self.members = nn.ModuleList(members)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = self.member_logits(x).log_softmax(dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))
