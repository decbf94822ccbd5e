"""Shared fixtures: no test may open a network connection; zoo models and data are cached."""

from __future__ import annotations

import socket

import matplotlib
import pytest
import torch

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
def zoo():
    """Every zoo model, loaded once per session (checksums verified)."""
    from tutorial_utils import models

    return {name: models.load(name, train_if_missing=False) for name in models.ZOO}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
