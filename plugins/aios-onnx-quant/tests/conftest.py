"""Fixtures: compress a model the way a run does, and the digits CNN (torch) as fp32 ONNX.

The data sets are the contract kit's (``digits_dataset``, ``tiny_dataset``); the small
ONNX classifiers built without a framework come from ``aios_onnx_quant_test_helpers``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from aios_core import Dataset, ModelArtifact, RunContext

sys.path.insert(0, str(Path(__file__).parent))

from aios_onnx_quant_test_helpers import compress_with, compressed_by_mode, onnx_artifact

Compress = Callable[..., tuple[ModelArtifact, RunContext]]


@pytest.fixture(scope="session")
def fp32_artifact(digits_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    """The digits CNN (conv 16, conv 32, maxpool, linear 128, linear 10), trained briefly, as fp32 ONNX."""
    torch = pytest.importorskip("torch", reason="the digits CNN tests need the test extra (torch, onnxscript)")
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 128), nn.ReLU(),
        nn.Linear(128, 10),
        nn.Softmax(dim=1),
    )
    x = torch.from_numpy(digits_dataset.x_train)
    y = torch.from_numpy(digits_dataset.y_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.NLLLoss()
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(8):
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            loss = loss_fn(torch.log(model(x[batch]) + 1e-9), y[batch])
            loss.backward()
            optimizer.step()
    model.eval()

    path = tmp_path_factory.mktemp("fp32") / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecation, raised inside export
        torch.onnx.export(model, (x[:2],), str(path), dynamo=True, external_data=False,
                          input_names=["input"], output_names=["probabilities"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    return onnx_artifact(path)


@pytest.fixture
def compress(fp32_artifact: ModelArtifact, digits_dataset: Dataset, tmp_path: Path) -> Compress:
    """Compress the fp32 digits CNN with the given parameters into a fresh run directory."""
    return lambda **params: compress_with(fp32_artifact, digits_dataset, tmp_path, **params)


@pytest.fixture(scope="session")
def compressed(fp32_artifact: ModelArtifact, digits_dataset: Dataset,
               tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], ModelArtifact]:
    """The compressed digits CNN for one mode (default parameters otherwise), built once per session."""
    return compressed_by_mode(fp32_artifact, digits_dataset, tmp_path_factory)
