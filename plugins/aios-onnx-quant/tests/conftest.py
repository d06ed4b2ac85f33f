"""Fixtures: the digits data set and a small CNN trained on it, exported to fp32 ONNX once per session."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aios_core import Dataset, ModelArtifact, RunContext, hash_arrays


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """sklearn's digits (8x8 images, 10 classes), stratified 60/20/20, standardized on train."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    y = y.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    mean, std = x_train.mean(), x_train.std()
    scale = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return Dataset(
        name="digits", x_train=scale(x_train), y_train=y_train, x_val=scale(x_val), y_val=y_val,
        x_test=scale(x_test), y_test=y_test, class_names=[str(i) for i in range(10)],
        content_hash=hash_arrays(x, y, "stratified-60-20-20-seed-0"), image_shape=(1, 8, 8),
        preprocessing={"standardize": {"mean": float(mean), "std": float(std)}},
    )


@pytest.fixture(scope="session")
def fp32_artifact(digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    """The digits CNN (conv 16, conv 32, maxpool, linear 128, linear 10), trained briefly, as fp32 ONNX."""
    import torch
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
    x = torch.from_numpy(digits.x_train)
    y = torch.from_numpy(digits.y_train)
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
    sample = x[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecation, raised inside export
        torch.onnx.export(model, (sample,), str(path), dynamo=True, external_data=False,
                          input_names=["input"], output_names=["probabilities"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    return ModelArtifact(name="onnx", path=path, format="onnx", producer="test-fixture")


Compress = Callable[..., tuple[ModelArtifact, RunContext]]


def _compress(artifact: ModelArtifact, dataset: Dataset, run_dir: Path, **params: Any) -> tuple[ModelArtifact, RunContext]:
    """Run ``aios_compress`` the way the runner does: the one component, registered in a real plugin manager."""
    from aios_core.plugins import new_plugin_manager
    from aios_onnx_quant import OnnxQuantCompressor

    pm = new_plugin_manager()
    pm.register(OnnxQuantCompressor(OnnxQuantCompressor.Params(**params)), name="onnx-quant")
    run = RunContext(name="t", seed=0, threads=1, dir=run_dir, stack={}, hook=pm.hook)
    return pm.hook.aios_compress(artifact=artifact, dataset=dataset, run=run), run


@pytest.fixture
def compress(fp32_artifact: ModelArtifact, digits: Dataset, tmp_path: Path) -> Compress:
    """Compress the fp32 digits CNN with the given parameters into a fresh run directory."""
    return lambda **params: _compress(fp32_artifact, digits, tmp_path, **params)


@pytest.fixture(scope="session")
def compressed(fp32_artifact: ModelArtifact, digits: Dataset,
               tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], ModelArtifact]:
    """The compressed model for one mode (default parameters otherwise), built once per session."""
    cache: dict[str, ModelArtifact] = {}

    def get(mode: str) -> ModelArtifact:
        if mode not in cache:
            cache[mode], _ = _compress(fp32_artifact, digits, tmp_path_factory.mktemp(mode), mode=mode)
        return cache[mode]

    return get
