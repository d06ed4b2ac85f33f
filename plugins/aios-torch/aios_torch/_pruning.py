"""Structured pruning of the framework's ``mlp`` and ``cnn`` models: whole units and channels go, then fine-tuning.

A built model's spec (``_aios_spec``) names its widths (``conv_channels``, ``hidden_units``).
Pruning keeps, in every hidden layer, the units (rows of a ``Linear``) or channels (filters
of a ``Conv2d``) whose incoming weights have the largest L1 or L2 norm, rebuilds the module
from the spec with the smaller widths and copies the kept weights into it. The result is an
ordinary, smaller dense model of the framework: it saves, loads and exports like any other,
so its ONNX file has smaller initializers and does less work per row. The output layer is
never pruned (it has one unit per class).

The target width is reached in ``steps`` equal steps, each followed by ``finetune_epochs``
of the stack's trainer (``RunContext.train``), whose checkpoints live in a folder per step;
each finished step's model is saved, so a resumed run continues inside the step it was in.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from aios_core import Dataset, ModelArtifact, RunContext, write_json
from aios_torch import _models

if TYPE_CHECKING:
    from aios_torch import TorchPruneParams

MIN_WIDTH = 1
"""No layer is pruned below one unit or channel."""
_SEARCH_GRID = 200
"""Sparsities tried when looking for the one that meets ``target_size_ratio``: 0, 1/200, ..., 199/200."""


# ---------------------------------------------------------------- widths and sizes
def widths(spec: dict[str, Any]) -> list[int]:
    """The prunable widths of a model's spec: its convolutions' channels (cnn), then its hidden units."""
    params = spec["params"]
    convs = list(params["conv_channels"]) if params["architecture"] == "cnn" else []
    return [*convs, *params["hidden_units"]]


def with_widths(spec: dict[str, Any], new: list[int]) -> dict[str, Any]:
    """A copy of ``spec`` whose layers have the widths ``new`` (in the order of ``widths``)."""
    params = dict(spec["params"])
    convs = len(params["conv_channels"]) if params["architecture"] == "cnn" else 0
    if convs:
        params["conv_channels"] = list(new[:convs])
    params["hidden_units"] = list(new[convs:])
    return {**spec, "params": params}


def widths_at(original: list[int], sparsity: float) -> list[int]:
    """Each width with ``sparsity`` of its units removed (rounded, at least ``MIN_WIDTH``)."""
    return [max(MIN_WIDTH, round(width * (1.0 - sparsity))) for width in original]


def parameter_count(spec: dict[str, Any]) -> int:
    """Parameters of the module ``spec`` describes, counted on the meta device (no memory, no weights drawn)."""
    with torch.device("meta"):
        module = _models.build_module(spec)
    return sum(p.numel() for p in module.parameters())


def sparsity_for_size(spec: dict[str, Any], target_ratio: float) -> float:
    """The smallest sparsity whose model has at most ``target_ratio`` of the parameters; ValueError if none does."""
    original = widths(spec)
    before = parameter_count(spec)
    for index in range(_SEARCH_GRID):
        sparsity = index / _SEARCH_GRID
        if parameter_count(with_widths(spec, widths_at(original, sparsity))) <= target_ratio * before:
            return sparsity
    smallest = parameter_count(with_widths(spec, [MIN_WIDTH] * len(original))) / before
    raise ValueError(
        f"torch-prune: target_size_ratio {target_ratio} cannot be met: even with {MIN_WIDTH} unit or channel per "
        f"hidden layer the model keeps {smallest:.3f} of its {before} parameters (the input and output layers "
        f"stay); set target_size_ratio to at least {math.ceil(smallest * 1000) / 1000}, or train a smaller model "
        "(model.hidden_units, model.conv_channels)")


MAX_SPARSITY = 0.95
"""The most ``target_latency_ms`` may prune."""
_LATENCY_GRID = 19
"""Sparsities ``target_latency_ms`` chooses from: 0, 0.05, ..., 0.9, 0.95 (19 steps of 0.05 after 0)."""
_LATENCY_RUNS = 300


def exported_latency_ms(spec: dict[str, Any], dataset: Dataset, scratch: Path, threads: int) -> float:
    """Median batch-1 latency (ms) of the ONNX export of the module ``spec`` describes (weights do not matter)."""
    from aios_core import onnx_session
    from aios_torch import _onnx

    with torch.random.fork_rng(devices=[]):
        module = _models.build_module(spec)
    path = scratch / f"{'-'.join(map(str, widths(spec)))}.onnx"
    _onnx.export_onnx(module, path, dataset)
    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    row = np.ascontiguousarray(dataset.x_val[:1], dtype=np.float32)
    timings = []
    for index in range(_LATENCY_RUNS + 20):
        start = time.perf_counter()
        session.run(None, {name: row})
        if index >= 20:
            timings.append(time.perf_counter() - start)
    return float(np.median(timings)) * 1000


def sparsity_for_latency(spec: dict[str, Any], target_ms: float, dataset: Dataset, threads: int,
                         log: Any) -> tuple[float, dict[str, float]]:
    """The smallest sparsity on the grid whose exported model takes at most ``target_ms`` at batch 1.

    Latency depends on the widths, not on the weights, so candidates are exported untrained
    and timed in ONNX Runtime as evaluation runs them; a binary search (latency falls as
    sparsity grows) needs a handful of exports. ValueError when even ``MAX_SPARSITY`` is too slow.
    """
    import tempfile

    original = widths(spec)
    grid = [round(MAX_SPARSITY * index / _LATENCY_GRID, 4) for index in range(_LATENCY_GRID + 1)]
    measured: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="aios-torch-prune-") as scratch:
        def latency(sparsity: float) -> float:
            key = f"{sparsity:g}"
            if key not in measured:
                measured[key] = round(exported_latency_ms(with_widths(spec, widths_at(original, sparsity)), dataset,
                                                          Path(scratch), threads), 4)
                log.info("torch-prune: sparsity %s -> %.4f ms at batch 1 (target %.4f)", key, measured[key], target_ms)
            return measured[key]

        if latency(grid[0]) <= target_ms:
            return grid[0], measured  # already fast enough: nothing to prune
        if latency(grid[-1]) > target_ms:
            raise ValueError(
                f"torch-prune: target_latency_ms {target_ms} cannot be met: even at sparsity {grid[-1]} (widths "
                f"{widths_at(original, grid[-1])}) the exported model takes {measured[f'{grid[-1]:g}']:.4f} ms per "
                "row at batch 1 here, most of it ONNX Runtime's per-call cost; raise target_latency_ms, or use "
                "sparsity / target_size_ratio")
        low, high = 1, len(grid) - 1  # grid[high] meets the target, grid[0] does not
        while low < high:
            middle = (low + high) // 2
            if latency(grid[middle]) <= target_ms:
                high = middle
            else:
                low = middle + 1
    return grid[high], measured


# ---------------------------------------------------------------- pruning one step
def _norms(weight: torch.Tensor, criterion: str) -> torch.Tensor:
    flat = weight.detach().reshape(weight.shape[0], -1)
    return flat.abs().sum(dim=1) if criterion == "l1" else flat.pow(2).sum(dim=1).sqrt()


def _kept(weight: torch.Tensor, width: int, criterion: str) -> torch.Tensor:
    """Indices (ascending) of the ``width`` output units with the largest norm; ties go to the lower index."""
    norms = _norms(weight, criterion).numpy().astype(np.float64)
    order = np.lexsort((np.arange(len(norms)), -norms))  # by norm descending, then index
    return torch.from_numpy(np.sort(order[:width]).astype(np.int64))


def prune(model: nn.Module, new_widths: list[int], criterion: str) -> nn.Module:
    """A new, smaller model of the same spec with ``new_widths``, holding ``model``'s strongest units' weights."""
    spec = _models.model_spec(model)
    old_widths = widths(spec)
    if len(new_widths) != len(old_widths) or any(n > o for n, o in zip(new_widths, old_widths, strict=True)):
        raise ValueError(f"torch-prune: cannot prune widths {old_widths} to {new_widths}")
    new_spec = with_widths(spec, new_widths)
    with torch.random.fork_rng(devices=[]):  # its fresh weights are all overwritten below
        pruned = _models.build_module(new_spec)
    old_layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    new_layers = [m for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(old_layers) != len(new_layers) or len(old_layers) != len(old_widths) + 1:
        raise ValueError("torch-prune: the model's layers do not match its spec; "
                         "prune models the torch framework built")
    kept_in: torch.Tensor | None = None  # input features kept in the next layer (None: all)
    with torch.no_grad():
        for index, (old, new) in enumerate(zip(old_layers, new_layers, strict=True)):
            weight = old.weight if kept_in is None else old.weight.index_select(1, kept_in)
            last = index == len(old_layers) - 1
            kept_out = torch.arange(weight.shape[0]) if last else _kept(weight, new_widths[index], criterion)
            new.weight.copy_(weight.index_select(0, kept_out))
            if old.bias is not None:
                new.bias.copy_(old.bias.index_select(0, kept_out))
            kept_in = kept_out
            if isinstance(old, nn.Conv2d) and not isinstance(old_layers[index + 1], nn.Conv2d):
                # Flatten after the last convolution: channel c feeds features c*spatial ... c*spatial + spatial - 1.
                spatial = old_layers[index + 1].in_features // old.out_channels
                kept_in = (kept_out[:, None] * spatial + torch.arange(spatial)[None, :]).reshape(-1)
    return pruned.train(model.training)


# ---------------------------------------------------------------- the compressor
def compress(artifact: ModelArtifact, dataset: Dataset, run: RunContext, params: TorchPruneParams) -> ModelArtifact:
    """Prune the native model in ``artifact`` step by step with fine-tuning; write and describe the result."""
    if len(dataset.y_val) == 0:
        raise ValueError(f"torch-prune measures accuracy on the validation split, but data set {dataset.name!r} "
                         "has no validation rows; give the datastore a val fraction > 0")
    model = _models.load_model(Path(artifact.path))
    spec = _models.model_spec(model)
    if spec["params"]["architecture"] not in ("mlp", "cnn"):
        raise ValueError(f"torch-prune prunes the torch framework's mlp and cnn models; this one is built by "
                         f"the factory {spec['params']['architecture']!r}")
    output = run.artifacts_dir / f"{Path(artifact.path).stem}.pruned.{artifact.format}"
    work = Path(run.checkpoint_dir) / output.stem
    sparsity, searched = _sparsity(spec, params, dataset, run, work / "target.json")
    original = widths(spec)
    target = widths_at(original, sparsity)
    before = _val_accuracy(model, dataset)
    steps: list[dict[str, Any]] = []
    started = time.perf_counter()
    for step in range(1, params.steps + 1 if target != original else 1):  # nothing to prune: no steps
        done, record = work / f"step-{step}.torch", work / f"step-{step}.json"
        if run.resume and done.exists() and record.exists():
            model = _models.load_model(done)
            run.log.info("torch-prune: step %d was done before the interruption (%s)", step, done)
            steps.append({**json.loads(record.read_text(encoding="utf-8")), "resumed": True})
            continue
        step_widths = [max(t, round(o - (o - t) * step / params.steps))
                       for o, t in zip(original, target, strict=True)]
        model = prune(model, step_widths, params.criterion)
        pruned_accuracy = _val_accuracy(model, dataset)
        overrides: dict[str, Any] = {"epochs": params.finetune_epochs}
        if params.finetune_learning_rate is not None:
            overrides["learning_rate"] = params.finetune_learning_rate
        step_started = time.perf_counter()
        if params.finetune_epochs:
            model = run.train(model, dataset, checkpoint_dir=work / f"step-{step}", overrides=overrides).model
        _models.save_model(model, done)
        steps.append({"step": step, "widths": step_widths, "val_accuracy_pruned": pruned_accuracy,
                      "val_accuracy": _val_accuracy(model, dataset),
                      "finetune_seconds": round(time.perf_counter() - step_started, 3)})
        write_json(record, steps[-1])  # after the model: a step counts as done when both are there
        run.log.info("torch-prune: step %d widths %s val_accuracy %.4f -> %.4f after fine-tuning", step,
                     step_widths, pruned_accuracy, steps[-1]["val_accuracy"])
    after = _val_accuracy(model, dataset)
    if before - after > params.max_accuracy_drop + 1e-9:
        raise ValueError(
            f"torch-prune: validation accuracy fell from {before:.4f} to {after:.4f} at sparsity {sparsity:.3f} "
            f"(widths {original} -> {target}), more than max_accuracy_drop {params.max_accuracy_drop}; "
            "prune less (sparsity / target_size_ratio), prune in more steps or fine-tune longer (finetune_epochs)")
    _models.save_model(model, output)
    parameters = {"before": parameter_count(spec), "after": parameter_count(_models.model_spec(model))}
    return ModelArtifact(name="pruned", path=output, format=artifact.format, producer="torch-prune", metrics={
        "criterion": params.criterion, "sparsity": sparsity,
        "widths": {"before": original, "after": target},
        "parameters": parameters, "parameter_ratio": round(parameters["after"] / parameters["before"], 4),
        "size_bytes": {"before": Path(artifact.path).stat().st_size, "after": output.stat().st_size},
        "val_accuracy": {"before": before, "after": after},
        "latency_ms_b1": _latencies(artifact, output, dataset, run.threads),
        "steps": steps, "seconds": round(time.perf_counter() - started, 3),
        **({"latency_search_ms": searched} if searched else {}),
    })


def _sparsity(spec: dict[str, Any], params: TorchPruneParams, dataset: Dataset, run: RunContext,
              record: Path) -> tuple[float, dict[str, float]]:
    """The sparsity the parameters ask for, and the latencies searched for ``target_latency_ms``.

    A latency search is recorded in ``record`` so that a resumed run prunes to the same
    widths as the interrupted one, whatever the machine's load is now.
    """
    if params.sparsity is not None:
        return params.sparsity, {}
    if params.target_size_ratio is not None:
        return sparsity_for_size(spec, params.target_size_ratio), {}
    if run.resume and record.exists():
        saved = json.loads(record.read_text(encoding="utf-8"))
        return float(saved["sparsity"]), saved["searched"]
    sparsity, searched = sparsity_for_latency(spec, float(params.target_latency_ms), dataset, run.threads, run.log)
    write_json(record, {"sparsity": sparsity, "searched": searched})
    return sparsity, searched


def _val_accuracy(model: nn.Module, dataset: Dataset) -> float:
    probabilities = _models.torch_predictor(model)(dataset.x_val)
    return float(np.mean(probabilities.argmax(axis=1) == dataset.y_val))


def _latencies(before: ModelArtifact, after: Path, dataset: Dataset, threads: int, runs: int = 100) -> dict[str, float]:
    """Median batch-1 latency (ms) of the input and output models in torch, measured interleaved."""
    predictors = {"before": _models.torch_predictor(_models.load_model(Path(before.path)), threads=threads),
                  "after": _models.torch_predictor(_models.load_model(after), threads=threads)}
    row = np.ascontiguousarray(dataset.x_val[:1], dtype=np.float32)
    timings: dict[str, list[float]] = {name: [] for name in predictors}
    for index in range(runs + 5):
        for name, predict in predictors.items():
            start = time.perf_counter()
            predict(row)
            if index >= 5:
                timings[name].append((time.perf_counter() - start) * 1000)
    return {name: round(float(np.median(values)), 4) for name, values in timings.items()}
