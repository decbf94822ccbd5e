"""The course's architectures: a small VGG-style CNN, a small vision transformer, a deep
ensemble, and GradCon's autoencoder.

Every zoo classifier has the same anatomy::

    SmallCNN: normalize -> features -> last_conv (the CAM target layer, map >= 6x6)
              -> global average pool -> dropout -> fc (the single final nn.Linear, W of (K, D))
    SignViT:  normalize -> patch_embed -> [class token; patch tokens] + pos_embed
              -> blocks (pre-norm nn.TransformerEncoderLayer) -> norm (class token only)
              -> dropout -> fc

``model.penultimate(x)`` returns the features ``h`` of shape ``(B, D)`` (the CNN's pooled
map, the ViT's normalised class token) so that ``model.fc(h) == model(x)`` in eval mode.
Inputs are images with pixels in ``[0, 1]``; the model normalises them in its first layer.

References
----------
- K. Simonyan, A. Zisserman, "Very deep convolutional networks for large-scale image
  recognition", ICLR 2015 (VGG-style stacks of 3x3 convolutions).
- A. Dosovitskiy et al., "An image is worth 16x16 words: transformers for image recognition
  at scale", ICLR 2021 (ViT: patch embedding, class token, learned position embeddings).
- R. Xiong et al., "On layer normalization in the transformer architecture", ICML 2020
  (pre-norm blocks).
- B. Lakshminarayanan, A. Pritzel, C. Blundell, "Simple and scalable predictive uncertainty
  estimation using deep ensembles", NeurIPS 2017.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tutorial_utils._checks import check_int, check_number

__all__ = [
    "conv_bn_relu",
    "Normalize",
    "SmallCNN",
    "SignViT",
    "Ensemble",
    "ConvAutoencoder",
]


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
        mean = [check_number(m, "mean") for m in mean]
        std = [check_number(v, "std", low=0.0, low_open=True) for v in std]
        if len(mean) != len(std) or not mean:
            raise ValueError(f"mean and std must give one value per channel, got {len(mean)} "
                             f"and {len(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    @classmethod
    def for_channels(cls, in_channels: int, mean: tuple[float, ...] | None = None,
                     std: tuple[float, ...] | None = None) -> Normalize:
        """The first layer of a zoo architecture with ``in_channels`` input channels.

        ``mean``/``std`` default to 0.5 and 0.25 per channel; given ones must hold one value
        per channel (``ValueError`` naming ``mean`` or ``std`` otherwise).
        """
        for name, stats in (("mean", mean), ("std", std)):
            if stats is not None and len(stats) != in_channels:
                raise ValueError(f"{name} must give one value per input channel "
                                 f"({in_channels}), got {len(stats)}")
        return cls(mean or (0.5,) * in_channels, std or (0.25,) * in_channels)

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
        in_channels = check_int(in_channels, "in_channels", low=1)
        num_classes = check_int(num_classes, "num_classes", low=1)
        w1, w2, w3 = _widths(widths, 3)
        dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.normalize = Normalize.for_channels(in_channels, mean, std)
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


class SignViT(nn.Module):
    """A small vision transformer (ViT, Dosovitskiy et al. 2021) built from torch's own blocks.

    Args:
        in_channels: 3 for signs.
        num_classes: K, the number of outputs of ``fc``.
        image_size: side of the square input images (48 for signs).
        patch_size: side of the non-overlapping patches; must divide ``image_size``. The
            token grid is ``token_grid = (image_size // patch_size,) * 2``.
        dim: token width D (the width of ``h``).
        depth: number of encoder blocks.
        heads: attention heads per block (must divide ``dim``).
        mlp_ratio: width of each block's MLP relative to ``dim``.
        dropout: dropout probability before ``fc`` (the model's only dropout module, so MC
            dropout samples the head exactly as for :class:`SmallCNN`).
        mean, std: per-channel statistics of the training images (``Normalize`` layer).

    Layers: ``normalize``; ``patch_embed`` (``Conv2d`` with kernel = stride = patch);
    ``cls_token`` (1, 1, D) and ``pos_embed`` (1, 1 + h·w, D), learned; ``blocks``, an
    ``nn.Sequential`` of ``nn.TransformerEncoderLayer(norm_first=True, batch_first=True,
    activation=nn.GELU())`` (a module, so guided backprop can guide it) whose outputs are
    token tensors (B, 1 + h·w, D) with the class token first and the patch tokens in
    row-major order; ``norm`` (``LayerNorm``, applied to
    the class token); ``dropout``; ``fc``.

    Explaining the token grid: :meth:`tokens_to_map` turns a token tensor (B, 1 + h·w, C)
    into a map (B, C, h, w), dropping the class token. The default CAM layer
    (:attr:`target_layer`) is ``blocks[-1].norm1``, the normalised input of the last
    attention: the logits read only the class token after the per-token final LayerNorm, so
    the patch tokens of the *last block's output* have zero gradient (a Grad-CAM there is
    empty); those of ``blocks[-1].norm1`` reach the class token through the last attention.

    Eval-mode forwards without hooks or gradients use PyTorch's fused encoder kernel (the
    "fast path"); a hook on a block or a forward that tracks gradients uses the ordinary
    modules. Both agree to float rounding (~1e-6).

    Input ``(B, in_channels, image_size, image_size)`` images with pixels in ``[0, 1]``;
    output logits ``(B, K)``.
    """

    prefers_channels_last = False
    """The course's batched forward passes (:func:`tutorial_utils.forward.logits`,
    ``features_and_logits``) leave the input's memory layout as it is: the only convolution is
    the patch embedding, which gains nothing from a channels-last copy of the batch."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int = 48,
        patch_size: int = 8,
        dim: int = 96,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.3,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", low=1)
        num_classes = check_int(num_classes, "num_classes", low=1)
        image_size = check_int(image_size, "image_size", low=1)
        patch_size = check_int(patch_size, "patch_size", low=1)
        dim = check_int(dim, "dim", low=1)
        depth = check_int(depth, "depth", low=1)
        heads = check_int(heads, "heads", low=1)
        mlp_ratio = check_number(mlp_ratio, "mlp_ratio", low=0.0, low_open=True)
        dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        if image_size % patch_size:
            raise ValueError(f"patch_size must divide image_size, got {patch_size} and "
                             f"{image_size}")
        if dim % heads:
            raise ValueError(f"heads must divide dim, got {heads} heads for dim {dim}")
        grid = image_size // patch_size
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size
        self.patch_size = patch_size
        self.token_grid: tuple[int, int] = (grid, grid)
        """(h, w): the patch tokens form an h x w grid (row-major after the class token)."""
        self.normalize = Normalize.for_channels(in_channels, mean, std)
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        blocks = []
        for _ in range(depth):
            block = nn.TransformerEncoderLayer(
                dim, heads, dim_feedforward=max(1, round(dim * mlp_ratio)), dropout=0.0,
                activation=nn.GELU(), batch_first=True, norm_first=True)  # a module: hookable
            # p = 0 dropout modules would be found by MC dropout; the head's is the only one
            block.dropout = block.dropout1 = block.dropout2 = nn.Identity()
            blocks.append(block)
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    @property
    def target_layer(self) -> nn.Module:
        """The default layer for CAM methods: ``blocks[-1].norm1`` (tokens (B, 1 + h·w, D))."""
        return self.blocks[-1].norm1

    def tokens_to_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token tensor (B, 1 + h·w, C) -> map (B, C, h, w), dropping the class token.

        The reshape transform a CAM method needs on a block's output (pytorch-grad-cam's
        ``reshape_transform``); gradients flow through it.
        """
        h, w = self.token_grid
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3 or \
                tokens.shape[1] != 1 + h * w:
            raise ValueError(f"tokens must have shape (B, 1 + {h}*{w}, C) = (B, {1 + h * w}, C), "
                             f"got {getattr(tokens, 'shape', type(tokens).__name__)}")
        return tokens[:, 1:].unflatten(1, (h, w)).permute(0, 3, 1, 2)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output tokens (B, 1 + h·w, D), class token first (before ``norm``)."""
        if x.dim() != 4 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"x must have shape (B, {self.in_channels}, {self.image_size}, "
                             f"{self.image_size}), got {tuple(x.shape)}")
        # (B, D, h, w) -> (B, hw, D); a view when the batch is channels-last (the course's
        # batched forward passes), the same values as flatten(2).transpose(1, 2) either way
        patches = self.patch_embed(self.normalize(x)).permute(0, 2, 3, 1).flatten(1, 2)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return self.blocks(torch.cat([cls, patches], dim=1) + self.pos_embed)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``h`` (B, D): the normalised class token, before dropout and ``fc``."""
        return self.norm(self.tokens(x)[:, 0])

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
        if not members or not all(isinstance(m, nn.Module) for m in members):
            raise ValueError("members must be a non-empty list of models (nn.Module)")
        self.members = nn.ModuleList(members)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = self.member_logits(x).log_softmax(dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


class ConvAutoencoder(nn.Module):
    """The convolutional autoencoder of GradCon (Kwon et al., ECCV 2020), for 28x28 images.

    Encoder: four 4x4 convolutions with stride 2 and padding 2, each followed by ReLU
    (28 -> 15 -> 8 -> 5 -> 3). Decoder: four 4x4 transposed convolutions with stride 2
    (3 -> 4 -> 8 -> 14 -> 28), ReLU between them and a sigmoid at the end, so a
    reconstruction has pixels in ``[0, 1]`` like its input. The decoder's transposed
    convolutions are the layers ``φ_i`` whose gradients GradCon constrains
    (:attr:`decoder_layers`).

    Args:
        in_channels: 1 for digits.
        widths: channels of the four encoder stages (the decoder mirrors them). The
            authors' ``(32, 32, 64, 64)`` has 230,721 parameters; the course's zoo uses
            half of it, ``(16, 16, 32, 32)`` (58,113 parameters), to keep ten checkpoints small.

    Input ``(B, in_channels, 28, 28)`` with pixels in ``[0, 1]``; output the same shape.
    """

    def __init__(self, in_channels: int = 1,
                 widths: tuple[int, int, int, int] = (16, 16, 32, 32)) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", low=1)
        w1, w2, w3, w4 = _widths(widths, 4)
        self.in_channels = in_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, w1, 4, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(w1, w2, 4, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(w2, w3, 4, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(w3, w4, 4, stride=2, padding=2), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(w4, w4, 4, stride=2, padding=2), nn.ReLU(),  # 3 -> 4
            nn.ConvTranspose2d(w4, w2, 4, stride=2, padding=1), nn.ReLU(),  # 4 -> 8
            nn.ConvTranspose2d(w2, w2, 4, stride=2, padding=2), nn.ReLU(),  # 8 -> 14
            nn.ConvTranspose2d(w2, in_channels, 4, stride=2, padding=1),    # 14 -> 28
            nn.Sigmoid(),
        )

    @property
    def decoder_layers(self) -> list[nn.ConvTranspose2d]:
        """The decoder's transposed convolutions ``φ_1 .. φ_4``, input side first."""
        return [m for m in self.decoder if isinstance(m, nn.ConvTranspose2d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _widths(widths: object, n: int) -> tuple[int, ...]:
    """``n`` positive channel counts."""
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__") or len(widths) != n:
        raise ValueError(f"widths must give {n} channel counts, got {widths!r}")
    return tuple(check_int(w, "widths", low=1) for w in widths)
