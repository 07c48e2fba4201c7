"""Shared fixtures for the pure-PyTorch modelling tests (no Django, no network)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, even by accident


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
