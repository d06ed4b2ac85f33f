"""Model factories for trials that fail: one raises, one trains to a NaN loss (``function(dataset, **options)``)."""

from __future__ import annotations

from aios_core import Dataset


def explode(dataset: Dataset) -> object:
    raise RuntimeError("this architecture cannot be built (test factory)")


def not_a_number(dataset: Dataset) -> object:
    """A model whose logits are NaN from the first step: its loss is NaN, so the trial must fail."""
    import torch
    from torch import nn

    class Nan(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(dataset.num_features, dataset.num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x) * float("nan")

    return Nan()
