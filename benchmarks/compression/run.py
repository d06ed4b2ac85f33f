"""Compression benchmark: fp32, int8, pruned 50 % / 75 %, pruned + int8, distilled, distilled + int8, in one run.

Run from the repository root with the project's venv (aios-torch, aios-data, aios-onnx-quant)::

    .venv/bin/python benchmarks/compression/run.py     # writes benchmarks/compression/RESULTS.md

For the digits CNN and MLP of the docs, in one process: the data come from the ``sklearn``
datastore with ``examples/digits-compress.yaml``'s parameters; the model is trained by the
``torch`` trainer; ``torch-prune``, ``distill`` and ``onnx-quant`` run as a run calls them
(a plugin manager holding the framework, trainer and compressor). Every ONNX model is then
measured in the kernel's ONNX Runtime session (``aios_core.onnx_session``, 1 thread):
size, test accuracy, and batch-1 / batch-256 latency, all models interleaved call by call
(each round calls every model once, in rotated order), medians reported, and the speed-up
over fp32 ONNX as the median of the per-round ratios. Timings are only comparable on the
same machine under the same load; tests never assert them.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))  # benchmarks/run.py: machine(), shared by the benchmark scripts
from run import machine as describe_machine  # noqa: E402
STACK = REPO / "examples" / "digits-compress.yaml"
MODELS = {
    "CNN": {"architecture": "cnn", "conv_channels": [16, 32], "hidden_units": [128], "dropout": 0.1},
    "MLP": {"architecture": "mlp", "hidden_units": [256, 128]},
}
STUDENTS = {"CNN": {"architecture": "mlp", "hidden_units": [64]}, "MLP": {"architecture": "mlp", "hidden_units": [64]}}
TRAINER = {"epochs": 20, "batch_size": 64, "learning_rate": 0.001, "early_stopping_patience": 5}
PRUNE = {"criterion": "l1", "finetune_epochs": 4, "finetune_learning_rate": 0.003, "max_accuracy_drop": 1.0}
DISTILL = {"temperature": 4.0, "alpha": 0.7, "epochs": 30, "learning_rate": 0.003, "max_accuracy_drop": 1.0}


def _say(text: str) -> None:
    print(text, flush=True)


class Bench:
    """The stack's datastore, the torch framework and trainer in one run directory."""

    def __init__(self, work: Path) -> None:
        from aios_torch import TorchFramework, TorchTrainer, TorchTrainerParams

        from aios_core import RunContext
        from aios_core.stack import load_stack
        from aios_core.testing import plugin_manager

        stack = load_stack(STACK)
        self.work = work
        self.data = stack.components["data"]
        self.trainer = TorchTrainer(TorchTrainerParams(**TRAINER))
        self.framework = TorchFramework()
        self._plugin_manager, self._context = plugin_manager, RunContext
        pm = plugin_manager(self.data)
        self.dataset = pm.hook.aios_load_dataset(run=self.run(pm, "data"))

    def run(self, pm: Any, name: str) -> Any:
        return self._context(name=name, seed=42, threads=1, dir=self.work / name, stack={}, hook=pm.hook)

    def manager(self, *components: Any) -> Any:
        return self._plugin_manager(self.framework, self.trainer, *components)

    def train(self, model_params: dict[str, Any], name: str) -> tuple[Any, float]:
        from aios_torch import TorchFramework

        from aios_core import ModelParams, wait_for_checkpoints

        framework = TorchFramework(ModelParams(**model_params))
        pm = self._plugin_manager(framework, self.trainer)
        run = self.run(pm, name)
        started = time.perf_counter()
        model = pm.hook.aios_build_model(dataset=self.dataset, run=run, overrides={})
        result = pm.hook.aios_train(model=model, dataset=self.dataset, run=run, overrides={})
        wait_for_checkpoints()
        seconds = time.perf_counter() - started
        artifact = pm.hook.aios_save_model(model=result.model, path=run.artifacts_dir / "model.torch")
        return artifact, seconds

    def compress(self, compressor: Any, artifact: Any, name: str) -> tuple[Any, float]:
        from aios_core import wait_for_checkpoints

        pm = self.manager(compressor)
        run = self.run(pm, name)
        run.phase = "compress-native" if artifact.format == "torch" else "compress"
        started = time.perf_counter()
        output = pm.hook.aios_compress(artifact=artifact, dataset=self.dataset, run=run)
        wait_for_checkpoints()
        return output, time.perf_counter() - started

    def export(self, artifact: Any, name: str) -> Path:
        from aios_torch import _models, _onnx

        path = self.work / "onnx" / f"{name}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        _onnx.export_onnx(_models.load_model(artifact.path), path, self.dataset)
        return path


def _quantized(bench: Bench, onnx_path: Path, name: str, mode: str = "static") -> tuple[Path, dict[str, Any]]:
    from aios_onnx_quant import OnnxQuantCompressor, OnnxQuantParams

    from aios_core import ModelArtifact

    artifact = ModelArtifact(name="onnx", path=onnx_path, format="onnx", producer="torch")
    output, _ = bench.compress(OnnxQuantCompressor(OnnxQuantParams(mode=mode, latency_runs=400)), artifact,
                               f"{name}-{mode}")
    return output.path, output.metrics


def _measure(paths: dict[str, Path], x: np.ndarray, y: np.ndarray, rounds: dict[int, int]) -> dict[str, Any]:
    """Size, test accuracy, and per batch size the median latency and the median per-round ratio to fp32."""
    from aios_core import onnx_session

    sessions = {name: onnx_session(path, 1) for name, path in paths.items()}
    inputs = {name: s.get_inputs()[0].name for name, s in sessions.items()}
    figures: dict[str, Any] = {}
    for name, session in sessions.items():
        predicted = session.run(None, {inputs[name]: x})[0].argmax(axis=1)
        figures[name] = {"size_bytes": paths[name].stat().st_size, "accuracy": float(np.mean(predicted == y)),
                         "latency_ms": {}, "speedup": {}}
    names = list(sessions)
    for batch, count in rounds.items():
        feed = np.ascontiguousarray(np.resize(x, (batch, x.shape[1])), dtype=np.float32)
        for name in names:  # warm-up
            for _ in range(20):
                sessions[name].run(None, {inputs[name]: feed})
        timings: dict[str, list[float]] = {name: [] for name in names}
        for index in range(count):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                sessions[name].run(None, {inputs[name]: feed})
                timings[name].append(time.perf_counter() - start)
        for name in names:
            figures[name]["latency_ms"][str(batch)] = round(float(np.median(timings[name])) * 1000, 4)
            ratios = np.asarray(timings["fp32"]) / np.asarray(timings[name])
            figures[name]["speedup"][str(batch)] = round(float(np.median(ratios)), 3)
    return figures


def bench_model(bench: Bench, label: str, model_params: dict[str, Any], rounds: dict[int, int]) -> dict[str, Any]:
    from aios_torch import DistillCompressor, DistillParams, TorchPruneCompressor, TorchPruneParams

    _say(f"{label}: training {model_params}")
    native, train_seconds = bench.train(model_params, label)
    paths = {"fp32": bench.export(native, f"{label}-fp32")}
    notes: dict[str, Any] = {"train_seconds": round(train_seconds, 2), "compress_seconds": {}}
    paths["int8"], _ = _quantized(bench, paths["fp32"], f"{label}-fp32")
    for sparsity, steps in ((0.5, 2), (0.75, 3)):
        name = f"pruned {int(sparsity * 100)}%"
        _say(f"{label}: {name}")
        pruned, seconds = bench.compress(TorchPruneCompressor(TorchPruneParams(sparsity=sparsity, steps=steps,
                                                                               **PRUNE)), native, f"{label}-{name}")
        notes["compress_seconds"][name] = round(seconds, 2)
        notes[f"{name} widths"] = pruned.metrics["widths"]["after"]
        paths[name] = bench.export(pruned, f"{label}-pruned{int(sparsity * 100)}")
    paths["pruned 75% + int8"], auto = _quantized(bench, paths["pruned 75%"], f"{label}-pruned75")
    _, notes["auto on pruned 75%"] = _quantized(bench, paths["pruned 75%"], f"{label}-pruned75", mode="auto")
    _say(f"{label}: distilling into {STUDENTS[label]}")
    student, seconds = bench.compress(DistillCompressor(DistillParams(student=STUDENTS[label], **DISTILL)), native,
                                      f"{label}-distill")
    notes["compress_seconds"]["distilled"] = round(seconds, 2)
    paths["distilled"] = bench.export(student, f"{label}-distilled")
    paths["distilled + int8"], _ = _quantized(bench, paths["distilled"], f"{label}-distilled")
    _, notes["auto on distilled"] = _quantized(bench, paths["distilled"], f"{label}-distilled", mode="auto")
    for key in ("auto on pruned 75%", "auto on distilled"):
        notes[key] = {"chosen": notes[key]["chosen"], "reason": notes[key]["reason"]}
    _say(f"{label}: measuring {len(paths)} ONNX models interleaved")
    figures = _measure(paths, bench.dataset.x_test, bench.dataset.y_test, rounds)
    return {"model": model_params, "student": STUDENTS[label], "figures": figures, "notes": notes}


def _report(results: dict[str, Any], machine: dict[str, str], seconds: float, rounds: dict[int, int]) -> str:
    lines = ["# Compression benchmark", "",
             f"Written by `benchmarks/compression/run.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"in {seconds:.0f} s. See the script's docstring and `docs/compression.md`.", "",
             "| machine |  |", "|---|---|", *[f"| {k} | {v} |" for k, v in machine.items()], "",
             f"Method: one thread everywhere; data from the `sklearn` datastore with `examples/digits-compress.yaml`'s "
             f"parameters (test split: {results['test_rows']} rows); trainer {TRAINER}; torch-prune {PRUNE} "
             f"(50 %: 2 steps, 75 %: 3 steps); distill {DISTILL}; int8 = onnx-quant mode static. All ONNX models of "
             f"a model measured in one loop, interleaved call by call ({rounds[1]} batch-1 and {rounds[256]} "
             "batch-256 rounds), medians; speed-up = median per-round ratio fp32 / model.", ""]
    for label, result in results["models"].items():
        figures, notes = result["figures"], result["notes"]
        fp32 = figures["fp32"]
        lines += [f"## {label} {result['model']}", "",
                  "| model | size bytes | size vs fp32 | test accuracy | batch-1 ms | batch-1 speed-up | batch-256 ms | "
                  "batch-256 speed-up |", "|---|---|---|---|---|---|---|---|"]
        for name, f in figures.items():
            lines.append(f"| {name} | {f['size_bytes']:,} | {f['size_bytes'] / fp32['size_bytes']:.3f} | "
                         f"{f['accuracy']:.4f} | {f['latency_ms']['1']:.4f} | {f['speedup']['1']:.2f}x | "
                         f"{f['latency_ms']['256']:.3f} | {f['speedup']['256']:.2f}x |")
        met = [name for name, f in figures.items() if f["speedup"]["1"] >= 2 and f["accuracy"] >= fp32["accuracy"] - 0.01
               and f["size_bytes"] * 5 <= fp32["size_bytes"]]
        lines += ["", f"Pruned widths: 50 % {notes['pruned 50% widths']}, 75 % {notes['pruned 75% widths']}; "
                      f"student {result['student']}.",
                  f"Target (>= 2x faster at batch 1 than fp32 ONNX, <= 1 point accuracy loss, >= 5x smaller): "
                  f"{'met by ' + ', '.join(met) if met else 'not met by any model'}.",
                  f"Wall time: training {notes['train_seconds']} s; compressing: "
                  + ", ".join(f"{k} {v} s" for k, v in notes["compress_seconds"].items()) + ".",
                  f"`onnx-quant mode: auto` on pruned 75 %: kept **{notes['auto on pruned 75%']['chosen']}** "
                  f"({notes['auto on pruned 75%']['reason']}); on the distilled student: kept "
                  f"**{notes['auto on distilled']['chosen']}** ({notes['auto on distilled']['reason']}).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds-b1", type=int, default=3000)
    parser.add_argument("--rounds-b256", type=int, default=200)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = parser.parse_args()
    import torch

    from aios_core import write_json, write_text

    torch.set_num_threads(1)
    machine, started = describe_machine("torch", "onnxruntime", "numpy"), time.perf_counter()
    rounds = {1: args.rounds_b1, 256: args.rounds_b256}
    with tempfile.TemporaryDirectory(prefix="aios-bench-compress-") as scratch:
        bench = Bench(Path(scratch))
        results: dict[str, Any] = {"test_rows": len(bench.dataset.y_test), "models": {}}
        for label, params in MODELS.items():
            results["models"][label] = bench_model(bench, label, params, rounds)
    seconds = time.perf_counter() - started
    machine["load average at end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    report = _report(results, machine, seconds, rounds)
    write_text(args.output, report + "\n")
    write_json(args.output.with_name("results.json"), results)
    _say(report)


if __name__ == "__main__":
    main()
