"""Model factories as a user would write them: ``function(dataset, **options) -> nn.Module``."""

from __future__ import annotations

import math

import torch
from torch import nn

from aios_core import Dataset


def linear(dataset: Dataset, *, scale: float = 1.0) -> nn.Module:
    """Softmax regression; ``scale`` multiplies the initial weights (to prove options arrive)."""
    layer = nn.Linear(dataset.num_features, dataset.num_classes)
    with torch.no_grad():
        layer.weight.mul_(scale)
    return layer


def two_layer(dataset: Dataset, *, width: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(dataset.num_features, width), nn.ReLU(), nn.Linear(width, dataset.num_classes))


def not_a_module(dataset: Dataset) -> object:
    return {"features": dataset.num_features}


class _Overflowing(nn.Module):
    """Wraps a model; after ``finite_steps`` training forward passes its logits are infinite."""

    def __init__(self, inner: nn.Module, finite_steps: int) -> None:
        super().__init__()
        self.inner = inner
        self.finite_steps = finite_steps
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)
        if self.training:
            self.steps += 1
            if self.steps > self.finite_steps:
                return logits * math.inf
        return logits


def overflowing(dataset: Dataset, *, finite_steps: int) -> nn.Module:
    """Softmax regression that diverges: from training step ``finite_steps + 1`` on, the loss is NaN."""
    return _Overflowing(linear(dataset), finite_steps)
