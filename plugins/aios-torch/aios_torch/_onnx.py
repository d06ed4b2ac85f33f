"""ONNX export with a parity check against PyTorch (ONNX files are run by the kernel: ``aios_core.onnx_session``)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from aios_core import Dataset, atomic_path, onnx_session

MAX_ABS_DIFF = 1e-4
"""Largest difference between ONNX Runtime and PyTorch probabilities an export may show."""
PARITY_BATCH_SIZES = (1, 256)


class _Probabilities(nn.Module):
    """Wraps a logits model so the exported graph outputs probabilities (a regression model's outputs as they are)."""

    def __init__(self, model: nn.Module, regression: bool = False) -> None:
        super().__init__()
        self.model = model
        self.regression = regression

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.model(x)
        return outputs if self.regression else torch.softmax(outputs, dim=1)


def export_onnx(model: nn.Module, path: Path, dataset: Dataset) -> dict[str, Any]:
    """Export ``model`` to ``path`` as one self-contained ONNX file and check it against PyTorch.

    The output is ``probabilities`` (n, classes), or ``predictions`` (n, targets) for a
    regression model (the ONNX contract of each task). Raises ``ValueError`` when ONNX
    Runtime's outputs differ from PyTorch's by more than ``MAX_ABS_DIFF``; ``path`` is
    then left untouched.
    """
    from aios_torch._models import is_regression

    rows = _parity_rows(dataset)
    was_training = model.training
    regression = is_regression(model)
    wrapper = _Probabilities(model, regression).eval()  # puts model in eval mode too; restored below
    try:
        with atomic_path(path) as tmp:
            sample = torch.from_numpy(rows[:2])  # batch > 1 so the exporter keeps the batch dimension symbolic
            batch = torch.export.Dim("batch", min=1)
            with _exporter_notes_silenced():
                torch.onnx.export(
                    wrapper, (sample,), tmp, dynamo=True, external_data=False, verbose=False,
                    input_names=["input"], output_names=["predictions" if regression else "probabilities"], dynamic_shapes=({0: batch},),
                )
            stray = [p for p in tmp.parent.iterdir() if p.name.startswith(tmp.name) and p != tmp]
            for extra in stray:
                extra.unlink()
            if stray:
                raise RuntimeError(f"ONNX export wrote extra files {stray}; expected one self-contained file")
            onnx.checker.check_model(str(tmp), full_check=True)
            metrics = _parity(wrapper, tmp, rows)
    finally:
        model.train(was_training)
    return metrics


@contextmanager
def _exporter_notes_silenced() -> Iterator[None]:
    """Hide the exporter's notes about its own internals (e.g. "torchvision is not installed"); errors still raise."""
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch's exporter calling its own deprecated pytree API; nothing a model author can change.
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        registry_log.setLevel(level)


def _parity_rows(dataset: Dataset) -> np.ndarray:
    """Up to 256 rows from the first non-empty split of test, val, train (repeated to fill 256)."""
    for name in ("test", "val", "train"):
        split = dataset.split(name)
        if split.rows:  # the first rows alone, read through the split: a split held as a view is not gathered whole
            rows = np.ascontiguousarray(split.read(0, min(split.rows, max(PARITY_BATCH_SIZES)))[0], dtype=np.float32)
            repeats = -(-max(PARITY_BATCH_SIZES) // len(rows))
            return np.ascontiguousarray(np.tile(rows, (repeats, 1))[: max(PARITY_BATCH_SIZES)])
    raise ValueError("ONNX export needs sample rows, but the dataset's test, val and train splits are empty")


def _parity(wrapper: nn.Module, path: Path, rows: np.ndarray) -> dict[str, Any]:
    session = onnx_session(path, threads=1)  # the settings evaluation and serving use
    input_name = session.get_inputs()[0].name
    worst = 0.0
    for size in PARITY_BATCH_SIZES:
        batch = rows[:size]
        with torch.inference_mode():
            expected = wrapper(torch.from_numpy(batch)).numpy()
        actual = session.run(None, {input_name: batch})[0]
        if actual.shape != expected.shape:
            raise ValueError(f"ONNX export: batch {size} gave output shape {actual.shape}, expected {expected.shape}")
        worst = max(worst, float(np.max(np.abs(actual - expected))))
    if worst > MAX_ABS_DIFF:
        raise ValueError(
            f"ONNX export: ONNX Runtime and PyTorch probabilities differ by up to {worst:.3g} "
            f"(allowed {MAX_ABS_DIFF:g}); the model uses an operation the exporter translates inexactly"
        )
    return {"max_abs_diff": worst, "parity_batch_sizes": list(PARITY_BATCH_SIZES), "opset": _opset(path)}


def _opset(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next((int(entry.version) for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)
