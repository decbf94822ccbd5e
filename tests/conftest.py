"""Shared fixtures: no test may open a network connection; zoo models and data are cached."""

from __future__ import annotations

import socket

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")  # tests never open a window

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


def _guard(original):
    def connect(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if host not in _LOCAL_HOSTS:
                raise RuntimeError(f"network access attempted in a test: {address!r}")
        return original(self, address, *args, **kwargs)

    return connect


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any test that tries to reach a non-loopback address."""
    monkeypatch.setattr(socket.socket, "connect", _guard(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guard(socket.socket.connect_ex))
    yield


@pytest.fixture(scope="session")
def signs():
    from tutorial_utils.data import load_signs

    return load_signs()


@pytest.fixture(scope="session")
def digits():
    from tutorial_utils.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def zoo_models():
    """Every zoo model, loaded once per session (checksums verified)."""
    from tutorial_utils import models, zoo

    return {name: models.load(name, train_if_missing=False) for name in zoo.ZOO}


@pytest.fixture(scope="session")
def sign_model():
    """The zoo's sign classifier (checksum verified), shared by the whole session."""
    from tutorial_utils import models

    return models.load("signs", train_if_missing=False)


@pytest.fixture(scope="session")
def picker(signs):
    """The first test image of every sign class, in class order: (14, 3, 48, 48)."""
    idx = [int(torch.nonzero(signs.y_test == k)[0]) for k in range(len(signs.classes))]
    return signs.x_test[idx]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


class TinyNet(nn.Module):
    """A small CNN with the zoo anatomy (penultimate + fc), fast enough for exact checks."""

    def __init__(self, k: int = 4, c: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, k)

    def penultimate(self, x):
        return self.pool(torch.relu(self.conv(x))).flatten(1)

    def forward(self, x):
        return self.fc(self.penultimate(x))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def x8():
    return torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(1))



@pytest.fixture(scope="module")
def small():
    """An untrained zoo-architecture sign classifier ``SmallCNN(3, 14)``, seeded, in eval mode
    (one per test module, so a module's changes cannot leak into another)."""
    from tutorial_utils.architectures import SmallCNN

    torch.manual_seed(0)
    return SmallCNN(3, 14).eval()


@pytest.fixture(scope="session")
def small_results(sign_model, signs):
    """Two tiny chapter-2 heads (feed-forward, introspective) evaluated on one test image per
    class under three challenges: an :class:`~tutorial_utils.introspection.IntrospectionResults`."""
    from tutorial_utils import introspection
    from tutorial_utils.data import stratified_indices
    from tutorial_utils.forward import features_and_logits

    idx = stratified_indices(signs.y_train, 4, seed=0)
    h, z = features_and_logits(sign_model, signs.x_train[idx])
    intro, ff = introspection.build_heads(h.shape[1], 14, hidden=4, seed=0)
    introspection.train_head(intro, h, z, signs.y_train[idx], epochs=2, progress=False)
    introspection.train_head(ff, h, z, signs.y_train[idx], epochs=2, progress=False)
    te = stratified_indices(signs.y_test, 1, seed=0)
    return introspection.evaluate_heads(sign_model, {"feed-forward": ff, "introspective": intro},
                                        signs.x_test[te], signs.y_test[te],
                                        challenges=("noise", "haze", "snow"), progress=False)
