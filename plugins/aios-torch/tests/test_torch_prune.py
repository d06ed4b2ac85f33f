"""``torch-prune``: whole units and channels removed, fine-tuned by the stack's trainer, exported smaller.

The models are the framework's own digits CNN and MLP, trained once per session for a few
epochs; each compression runs in a real plugin manager with the torch framework and trainer,
as a run's ``compress-native`` phase does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from aios_torch import (
    TorchPruneCompressor,
    TorchPruneParams,
    _models,
    _onnx,
    _pruning,
)
from pydantic import ValidationError

from aios_core import Dataset, ModelArtifact, onnx_predictor


def prune_with(
    compress: Callable[..., ModelArtifact],
    artifact: ModelArtifact,
    dataset: Dataset,
    run_dir: Path,
    *,
    monitors: tuple = (),
    resume: bool = False,
    **params: Any,
) -> ModelArtifact:
    """Prune with ``params`` through ``compress`` (the ``compress_natively`` fixture)."""
    return compress(
        TorchPruneCompressor(TorchPruneParams(**params)), artifact, dataset, run_dir, monitors=monitors, resume=resume
    )


@pytest.fixture(scope="module")
def pruned_cnn(
    trained_cnn: ModelArtifact,
    digits_dataset: Dataset,
    compress_natively: Callable[..., ModelArtifact],
    tmp_path_factory: pytest.TempPathFactory,
) -> ModelArtifact:
    return prune_with(
        compress_natively,
        trained_cnn,
        digits_dataset,
        tmp_path_factory.mktemp("pruned-cnn"),
        sparsity=0.5,
        steps=2,
        finetune_epochs=4,
        finetune_learning_rate=0.003,
    )


def _accuracy(model: torch.nn.Module, dataset: Dataset) -> float:
    return float(np.mean(_models.torch_predictor(model)(dataset.x_test).argmax(axis=1) == dataset.y_test))


# ---------------------------------------------------------------- what pruning does to a model
@pytest.mark.parametrize("which", ["cnn", "mlp"])
def test_pruning_to_the_same_widths_changes_nothing(
    which: str, trained_cnn: ModelArtifact, trained_mlp: ModelArtifact, digits_dataset: Dataset
) -> None:
    """Copying every unit into the rebuilt module (the flatten mapping included) keeps the function exactly."""
    model = _models.load_model((trained_cnn if which == "cnn" else trained_mlp).path)
    same = _pruning.prune(model, _pruning.widths(_models.model_spec(model)), "l1")
    rows = torch.from_numpy(digits_dataset.x_test)
    with torch.inference_mode():
        np.testing.assert_array_equal(same.eval()(rows).numpy(), model(rows).numpy())


def test_removing_channels_that_carry_nothing_keeps_the_outputs(
    trained_cnn: ModelArtifact, digits_dataset: Dataset
) -> None:
    """Zero the weakest half of the last convolution's filters: pruning must remove exactly those, so the
    logits stay the same (this checks which flattened features follow each kept channel)."""
    model = _models.load_model(trained_cnn.path)
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    dead = torch.arange(conv.out_channels)[1::2]
    with torch.no_grad():
        conv.weight[dead] = 0.0
        conv.bias[dead] = -1.0  # relu(-1) = 0: the channel contributes nothing
    pruned = _pruning.prune(model, [16, conv.out_channels // 2, 64], "l2")
    rows = torch.from_numpy(digits_dataset.x_test)
    with torch.inference_mode():
        np.testing.assert_allclose(pruned.eval()(rows).numpy(), model(rows).numpy(), atol=1e-5)


@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_the_units_with_the_largest_norm_are_kept(criterion: str, trained_mlp: ModelArtifact) -> None:
    model = _models.load_model(trained_mlp.path)
    first = model[0].weight.detach()
    norms = first.abs().sum(dim=1) if criterion == "l1" else first.norm(dim=1)
    pruned = _pruning.prune(model, [16, 32], criterion)
    expected = torch.sort(torch.argsort(norms, descending=True)[:16]).values
    torch.testing.assert_close(pruned[0].weight.detach(), first[expected])


def test_compressing_removes_channels_and_parameters(pruned_cnn: ModelArtifact, trained_cnn: ModelArtifact) -> None:
    metrics = pruned_cnn.metrics
    assert (pruned_cnn.name, pruned_cnn.format, pruned_cnn.producer) == ("pruned", "torch", "torch-prune")
    assert pruned_cnn.path.name == "model.pruned.torch" and pruned_cnn.path.parent.name == "artifacts"
    assert metrics["widths"] == {"before": [16, 32, 64], "after": [8, 16, 32]}
    model = _models.load_model(pruned_cnn.path)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16]
    counted = sum(p.numel() for p in model.parameters())
    original = sum(p.numel() for p in _models.load_model(trained_cnn.path).parameters())
    assert metrics["parameters"] == {"before": original, "after": counted}
    assert counted < 0.35 * original
    assert pruned_cnn.size_bytes < trained_cnn.size_bytes


def test_the_pruned_model_exports_smaller_onnx_initializers_with_parity(
    pruned_cnn: ModelArtifact, trained_cnn: ModelArtifact, digits_dataset: Dataset, tmp_path: Path
) -> None:
    shapes = {}
    for name, artifact in (("fp32", trained_cnn), ("pruned", pruned_cnn)):
        path = tmp_path / f"{name}.onnx"
        report = _onnx.export_onnx(_models.load_model(artifact.path), path, digits_dataset)
        assert report["max_abs_diff"] <= _onnx.MAX_ABS_DIFF  # ONNX Runtime agrees with torch
        proto = onnx.load(str(path))
        shapes[name] = sorted(tuple(i.dims) for i in proto.graph.initializer if len(i.dims) > 1)
        shapes[f"{name}-size"] = path.stat().st_size
    assert (8, 1, 3, 3) in shapes["pruned"] and (16, 8, 3, 3) in shapes["pruned"]
    assert (16, 1, 3, 3) in shapes["fp32"] and (32, 16, 3, 3) in shapes["fp32"]
    assert shapes["pruned-size"] < 0.4 * shapes["fp32-size"]
    probabilities = onnx_predictor(tmp_path / "pruned.onnx")(digits_dataset.x_test)
    with torch.inference_mode():
        expected = torch.softmax(_models.load_model(pruned_cnn.path)(torch.from_numpy(digits_dataset.x_test)), 1)
    np.testing.assert_allclose(probabilities, expected.numpy(), atol=1e-4)


def test_accuracy_after_fine_tuning_is_within_the_budget(
    pruned_cnn: ModelArtifact, trained_cnn: ModelArtifact, digits_dataset: Dataset
) -> None:
    metrics = pruned_cnn.metrics
    assert metrics["val_accuracy"]["before"] - metrics["val_accuracy"]["after"] <= 0.02  # max_accuracy_drop default
    before = _accuracy(_models.load_model(trained_cnn.path), digits_dataset)
    assert _accuracy(_models.load_model(pruned_cnn.path), digits_dataset) >= before - 0.03
    assert [step["step"] for step in metrics["steps"]] == [1, 2]
    assert metrics["steps"][0]["widths"] == [12, 24, 48]  # halfway to the target
    assert metrics["latency_ms_b1"]["before"] > 0 and metrics["latency_ms_b1"]["after"] > 0


def test_fine_tuning_goes_through_the_stack_trainer_with_its_monitors(
    compress_natively: Callable[..., ModelArtifact],
    trained_mlp: ModelArtifact,
    flat_digits: Dataset,
    tmp_path: Path,
    epoch_recorder: Any,
) -> None:
    recorder = epoch_recorder()
    out = prune_with(
        compress_natively,
        trained_mlp,
        flat_digits,
        tmp_path,
        monitors=(recorder,),
        sparsity=0.5,
        steps=2,
        finetune_epochs=1,
        max_accuracy_drop=1.0,
    )
    assert [epoch for epoch, _ in recorder.epochs] == [1, 1]  # one epoch after each step
    for step in (1, 2):  # each step's checkpoints in a folder of their own, written by the trainer
        assert (tmp_path / "checkpoints" / "model.pruned" / f"step-{step}" / "last.pt").is_file()
        assert (tmp_path / "checkpoints" / "model.pruned" / f"step-{step}.torch").is_file()
    assert out.metrics["widths"]["after"] == [32, 16]


def test_target_size_ratio_picks_the_smallest_sparsity_that_meets_it(
    compress_natively: Callable[..., ModelArtifact],
    pruned_cnn: ModelArtifact,
    trained_mlp: ModelArtifact,
    flat_digits: Dataset,
    tmp_path: Path,
) -> None:
    out = prune_with(
        compress_natively,
        trained_mlp,
        flat_digits,
        tmp_path,
        target_size_ratio=0.3,
        steps=1,
        finetune_epochs=1,
        max_accuracy_drop=1.0,
    )
    assert out.metrics["parameter_ratio"] <= 0.3
    spec = _models.model_spec(_models.load_model(trained_mlp.path))
    less = _pruning.widths_at(_pruning.widths(spec), out.metrics["sparsity"] - 1 / 200)
    assert _pruning.parameter_count(_pruning.with_widths(spec, less)) > 0.3 * out.metrics["parameters"]["before"]


def test_a_size_target_that_cannot_be_met_says_what_can(
    compress_natively: Callable[..., ModelArtifact], trained_mlp: ModelArtifact, flat_digits: Dataset, tmp_path: Path
) -> None:
    with pytest.raises(
        ValueError,
        match=r"target_size_ratio 0.001 cannot be met.*set target_size_ratio to at "
        r"least 0\.0\d+",
    ):
        prune_with(compress_natively, trained_mlp, flat_digits, tmp_path, target_size_ratio=0.001)
    assert not (tmp_path / "artifacts").exists()


def test_a_latency_target_that_cannot_be_met_says_why(
    compress_natively: Callable[..., ModelArtifact], trained_mlp: ModelArtifact, flat_digits: Dataset, tmp_path: Path
) -> None:
    """No model runs in a nanosecond: even the sparsest candidate's export misses, and the message says so."""
    with pytest.raises(
        ValueError,
        match=r"target_latency_ms 1e-06 cannot be met: even at sparsity 0.95 \(widths "
        r"\[3, 2\]\) the exported model takes [\d.]+ ms per row",
    ):
        prune_with(compress_natively, trained_mlp, flat_digits, tmp_path, target_latency_ms=1e-6)
    assert not (tmp_path / "artifacts").exists()


def test_a_latency_target_already_met_prunes_nothing_and_records_the_search(
    compress_natively: Callable[..., ModelArtifact], trained_mlp: ModelArtifact, flat_digits: Dataset, tmp_path: Path
) -> None:
    out = prune_with(compress_natively, trained_mlp, flat_digits, tmp_path, target_latency_ms=1000.0)
    assert out.metrics["sparsity"] == 0 and out.metrics["widths"] == {"before": [64, 32], "after": [64, 32]}
    assert out.metrics["steps"] == [] and out.metrics["parameter_ratio"] == 1.0
    searched = out.metrics["latency_search_ms"]
    assert list(searched) == ["0"] and searched["0"] > 0  # the unpruned export was fast enough: no more searched
    assert (tmp_path / "checkpoints" / "model.pruned" / "target.json").is_file()  # a resumed run reuses it


def test_a_latency_target_between_the_extremes_is_searched_for_the_smallest_sparsity_that_meets_it(
    trained_mlp: ModelArtifact, flat_digits: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search's logic, on a latency that falls with the widths as a real one does but without the noise of a
    busy machine (a tiny MLP's extremes are within a microsecond, so a midpoint target made the real search
    flaky); the test above and the example's run measure real exports."""
    spec = _models.model_spec(_models.load_model(trained_mlp.path))
    full = sum(_pruning.widths(spec))
    exports: list[list[int]] = []

    def latency_of(candidate: dict[str, Any], dataset: Dataset, scratch: Path, threads: int) -> float:
        exports.append(_pruning.widths(candidate))
        return 0.001 + 0.01 * sum(_pruning.widths(candidate)) / full

    monkeypatch.setattr(_pruning, "exported_latency_ms", latency_of)
    log = logging.getLogger("test")
    grid = [round(0.95 * index / 19, 4) for index in range(20)]
    for target in (0.0105, 0.008, 0.005, 0.0025):
        exports.clear()
        chosen, measured = _pruning.sparsity_for_latency(spec, target, flat_digits, 1, log)
        meeting = [sparsity for sparsity in grid if latency_of(_pruning.with_widths(
            spec, _pruning.widths_at(_pruning.widths(spec), sparsity)), flat_digits, Path(), 1) <= target]
        assert chosen == meeting[0]  # the smallest sparsity on the grid that meets the target
        assert measured[f"{chosen:g}"] <= target
        assert len(measured) <= 2 + 5  # both ends, then a binary search over 20 points, not every point


def test_an_accuracy_loss_beyond_the_budget_fails_and_says_what_to_change(
    compress_natively: Callable[..., ModelArtifact], trained_mlp: ModelArtifact, flat_digits: Dataset, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"more than max_accuracy_drop 0.0; prune less"):
        prune_with(
            compress_natively,
            trained_mlp,
            flat_digits,
            tmp_path,
            sparsity=0.97,
            steps=1,
            finetune_epochs=0,
            max_accuracy_drop=0.0,
        )


def test_resuming_continues_inside_the_step_it_was_in_to_the_same_model(
    compress_natively: Callable[..., ModelArtifact],
    trained_mlp: ModelArtifact,
    flat_digits: Dataset,
    tmp_path: Path,
    epoch_recorder: Any,
) -> None:
    """Interrupted in step 2's fine-tuning (Ctrl-C in a monitor; kill -9 is the end-to-end test's), then
    resumed: step 1 is not redone, step 2 continues from its checkpoint, the result equals a straight run."""
    params = {"sparsity": 0.5, "steps": 2, "finetune_epochs": 3, "max_accuracy_drop": 1.0}
    straight = prune_with(compress_natively, trained_mlp, flat_digits, tmp_path / "straight", **params)
    interrupted = tmp_path / "interrupted"
    recorder = epoch_recorder(interrupt_at_epoch=2)
    with pytest.raises(KeyboardInterrupt):  # the first time epoch 2 ends: inside step 1
        prune_with(compress_natively, trained_mlp, flat_digits, interrupted, monitors=(recorder,), **params)
    resumed_recorder = epoch_recorder()
    resumed = prune_with(
        compress_natively, trained_mlp, flat_digits, interrupted, monitors=(resumed_recorder,), resume=True, **params
    )
    assert [epoch for epoch, _ in resumed_recorder.epochs] == [2, 3, 1, 2, 3]  # step 1 goes on from epoch 1
    first, second = torch.load(straight.path, weights_only=True), torch.load(resumed.path, weights_only=True)
    for key, value in first["state_dict"].items():
        torch.testing.assert_close(second["state_dict"][key], value, rtol=0, atol=0)
    assert resumed.metrics["val_accuracy"] == straight.metrics["val_accuracy"]


# ---------------------------------------------------------------- parameters and validation
def test_parameters_take_one_target() -> None:
    assert TorchPruneParams().sparsity == 0.5
    with pytest.raises(ValidationError, match="give one target"):
        TorchPruneParams(sparsity=0.5, target_size_ratio=0.5)
    with pytest.raises(ValidationError, match="give one target: sparsity or target_latency_ms"):
        TorchPruneParams(sparsity=0.5, target_latency_ms=0.01)
    assert TorchPruneParams(target_latency_ms=0.01).sparsity is None
    for bad in (
        {"sparsity": 1.0},
        {"sparsity": 0},
        {"criterion": "l3"},
        {"target_size_ratio": 0},
        {"steps": 0},
        {"target_latency_ms": 0},
    ):
        with pytest.raises(ValidationError):
            TorchPruneParams(**bad)


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        (
            {"model": {"framework": "torch", "architecture": "pkg.mod:make"}, "trainer": {"plugin": "torch"}},
            "factory architecture 'pkg.mod:make'",
        ),
        (
            {"model": {"framework": "keras", "architecture": "mlp"}, "trainer": {"plugin": "keras"}},
            "compresses models of the torch framework",
        ),
        ({"model": {"framework": "torch", "architecture": "mlp"}}, "no trainer: section"),
    ],
)
def test_validation_refuses_what_cannot_be_pruned(stack: dict, expected: str) -> None:
    from aios_core import ValidationContext

    problems = TorchPruneCompressor().aios_validate(ValidationContext(stack=stack, seed=0, threads=1, source="s.yaml"))
    assert any(expected in message for _, message in problems), problems


def test_validation_accepts_a_torch_mlp_with_a_trainer() -> None:
    from aios_core import ValidationContext

    stack = {"model": {"framework": "torch", "architecture": "mlp"}, "trainer": {"plugin": "torch"}}
    assert TorchPruneCompressor().aios_validate(ValidationContext(stack=stack, seed=0, threads=1, source="s")) == []
