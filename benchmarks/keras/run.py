"""Keras benchmarks: (a) the keras trainer against a plain ``model.fit``, (b) one stack with torch and with keras.

Run from the repository root with the project's venv (aios-tf, aios-torch, aios-data and
aios-onnx-quant installed)::

    .venv/bin/python benchmarks/keras/run.py            # writes benchmarks/keras/RESULTS.md

(a) runs in this process (TensorFlow only); (b) runs ``aios run`` as subprocesses, one
per framework, so torch and TensorFlow never share a process. Timings are only
comparable on the same machine under the same load; tests never assert them.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import itertools
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))  # benchmarks/run.py: machine(), shared by the benchmark scripts
from run import machine as describe_machine  # noqa: E402
SEED = 42
MODELS = {
    "tutorial MLP": ({"architecture": "mlp", "hidden_units": [128]}, 32),
    "digits CNN": ({"architecture": "cnn", "conv_channels": [16, 32], "hidden_units": [128], "dropout": 0.1}, 64),
}


def _say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------- data
def _digits() -> Any:
    """Digits through the sklearn datastore with the stacks' parameters (standardized, seeded split)."""
    from aios_data import SklearnDatastore

    from aios_core import RunContext
    from aios_core.testing import plugin_manager

    datastore = SklearnDatastore(SklearnDatastore.Params.model_validate(
        {"dataset": "digits", "preprocess": {"scaling": "standardize"}, "split": {"validation": 0.15, "test": 0.15}}))
    pm = plugin_manager(datastore)
    run = RunContext(name="bench", seed=SEED, threads=1, dir=Path(tempfile.gettempdir()), stack={}, hook=pm.hook)
    return pm.hook.aios_load_dataset(run=run)


def _mnist_like(digits: Any, rows: int) -> Any:
    """MNIST-sized rows (28x28, ``rows`` of them) made from digits: each image upscaled 3x, shifted, with noise.

    Only the shapes matter for timing: 784 features and tens of thousands of rows, as MNIST.
    """
    from aios_core import Dataset

    rng = np.random.default_rng(SEED)

    def expand(x: np.ndarray, y: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        pick = rng.integers(0, len(y), count)
        images = np.kron(x[pick].reshape(-1, 8, 8), np.ones((3, 3), dtype=np.float32))
        canvas = np.zeros((count, 28, 28), dtype=np.float32)
        shifts = rng.integers(0, 5, (count, 2))
        for i, (dy, dx) in enumerate(shifts):
            canvas[i, dy:dy + 24, dx:dx + 24] = images[i]
        canvas += rng.normal(0, 0.3, canvas.shape).astype(np.float32)
        return canvas.reshape(count, 784), y[pick]

    x_train, y_train = expand(digits.x_train, digits.y_train, rows)
    x_val, y_val = expand(digits.x_val, digits.y_val, rows // 6)
    x_test, y_test = expand(digits.x_test, digits.y_test, rows // 6)
    return Dataset(name="mnist-like", x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test,
                   y_test=y_test, class_names=digits.class_names, content_hash="", image_shape=(1, 28, 28))


# ---------------------------------------------------------------- (a) trainer vs model.fit
class _EpochClock:
    """A monitor timestamping the end of each epoch (the trainer's report)."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    from aios_core import hookimpl

    @hookimpl
    def aios_on_epoch_end(self, epoch: int) -> None:
        self.marks.append(time.perf_counter())


def _per_epoch(marks: list[float]) -> float:
    """Median time between successive epoch ends (epoch 1, which traces the graphs, is left out)."""
    return statistics.median(b - a for a, b in itertools.pairwise(marks))


def _accuracy(model: Any, dataset: Any) -> float:
    probabilities = model.predict(dataset.x_test, batch_size=4096, verbose=0)
    return float((probabilities.argmax(axis=1) == dataset.y_test).mean())


def _run_trainer(dataset: Any, model_params: dict, batch_size: int, epochs: int, scratch: Path,
                 checkpoint_interval_s: float | None) -> dict:
    from aios_tf import KerasFramework, KerasTrainer, KerasTrainerParams

    from aios_core import ModelParams, RunContext
    from aios_core.testing import plugin_manager

    clock = _EpochClock()
    trainer = {"epochs": epochs, "batch_size": batch_size}
    if checkpoint_interval_s is not None:
        trainer["checkpoint_interval_s"] = checkpoint_interval_s
    pm = plugin_manager(KerasFramework(ModelParams(**model_params)), KerasTrainer(KerasTrainerParams(**trainer)), clock)
    run_dir = Path(tempfile.mkdtemp(dir=scratch))
    run = RunContext(name="bench", seed=SEED, threads=1, dir=run_dir, stack={}, hook=pm.hook)
    run.phase = "train"
    model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    started = time.perf_counter()
    result = pm.hook.aios_train(model=model, dataset=dataset, run=run, overrides={})
    total = time.perf_counter() - started
    return {"epoch": _per_epoch(clock.marks), "total": total, "accuracy": _accuracy(result.model, dataset),
            "val_accuracy": result.history[-1]["val_accuracy"]}


def _run_plain(dataset: Any, model_params: dict, batch_size: int, epochs: int, scratch: Path) -> dict:
    """What a Keras user writes: build the same model, compile the same, model.fit with validation_data."""
    import keras
    from aios_tf import KerasFramework

    from aios_core import ModelParams, RunContext
    from aios_core.testing import plugin_manager

    pm = plugin_manager(KerasFramework(ModelParams(**model_params)))
    run = RunContext(name="bench", seed=SEED, threads=1, dir=scratch, stack={}, hook=pm.hook)
    model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    keras.utils.set_random_seed(SEED)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=False)
    marks: list[float] = []
    clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: marks.append(time.perf_counter()))
    started = time.perf_counter()
    history = model.fit(dataset.x_train, dataset.y_train, batch_size=batch_size, epochs=epochs,
                        validation_data=(dataset.x_val, dataset.y_val), validation_batch_size=4096, shuffle=True,
                        verbose=0, callbacks=[clock])
    total = time.perf_counter() - started
    return {"epoch": _per_epoch(marks), "total": total, "accuracy": _accuracy(model, dataset),
            "val_accuracy": float(history.history["val_accuracy"][-1])}


def bench_trainer(datasets: dict[str, Any], epochs: int, repeats: int, scratch: Path,
                  checkpoint_interval_s: float | None) -> list[dict]:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()  # the trainer turns it on; the plain runs get it too
    rows = []
    for data_name, dataset in datasets.items():
        for model_name, (model_params, batch_size) in MODELS.items():
            if model_name == "digits CNN" and data_name != "digits":
                continue
            runs: dict[str, list[dict]] = {"trainer": [], "plain": []}
            _run_plain(dataset, model_params, batch_size, 2, scratch)  # warm-up: tracing, caches
            for _ in range(repeats):  # alternate, so load spikes hit both
                runs["trainer"].append(_run_trainer(dataset, model_params, batch_size, epochs, scratch,
                                                    checkpoint_interval_s))
                runs["plain"].append(_run_plain(dataset, model_params, batch_size, epochs, scratch))
            row = {"data": data_name, "model": model_name, "rows": len(dataset.y_train), "batch_size": batch_size}
            for variant, results in runs.items():
                row[variant] = {key: statistics.median(r[key] for r in results) for key in results[0]}
            row["ratio"] = row["trainer"]["epoch"] / row["plain"]["epoch"]
            row["total_ratio"] = row["trainer"]["total"] / row["plain"]["total"]
            _say(f"(a) {data_name} / {model_name}: trainer {row['trainer']['epoch'] * 1000:.1f} ms/epoch vs plain "
                 f"{row['plain']['epoch'] * 1000:.1f} ms/epoch: ratio {row['ratio']:.3f}; test accuracy "
                 f"{row['trainer']['accuracy']:.4f} vs {row['plain']['accuracy']:.4f}")
            rows.append(row)
    return rows


# ---------------------------------------------------------------- (b) torch vs keras, one stack
def _stack_text(path: Path, framework: str) -> str:
    text = re.sub(r"(?m)^trainer:\n  plugin: torch\n", "trainer:\n", path.read_text())
    return re.sub(r"(?m)^  framework: \w+", f"  framework: {framework}", text)


def bench_stacks(scratch: Path, repeats: int) -> list[dict]:
    from aios_core import RunDirectory

    aios = Path(sys.executable).with_name("aios")
    rows = []
    for stack_path in (REPO / "examples" / "digits-torch.yaml", REPO / "examples" / "mnist-keras.yaml"):
        for _ in range(repeats):
            for framework in ("torch", "keras"):
                stack_file = scratch / f"{stack_path.stem}-{framework}.yaml"
                stack_file.write_text(_stack_text(stack_path, framework))
                runs_dir = Path(tempfile.mkdtemp(dir=scratch))
                env = {k: v for k, v in os.environ.items() if k != "AIOS_EPOCHS"}
                result = subprocess.run([str(aios), "run", str(stack_file), "--runs-dir", str(runs_dir),
                                         "--set", "monitors.0.plugin=jsonl"], capture_output=True, text=True, env=env,
                                        check=False)
                if result.returncode != 0:
                    raise RuntimeError(f"aios run {stack_file} failed:\n{result.stdout}\n{result.stderr}")
                state = RunDirectory.open(next(runs_dir.iterdir())).read_state()
                report = state.phases["evaluate"]
                by_name = {a["name"]: a for a in report["artifacts"]}
                history = state.phases["train"]["history"]
                rows.append({
                    "stack": stack_path.name, "framework": framework, "epochs": len(history),
                    "epoch_seconds": statistics.median(row["seconds"] for row in history[1:]),
                    "train_phase_seconds": state.phases["train"]["seconds"],
                    "onnx_accuracy": by_name["onnx"]["accuracy"], "int8_accuracy": by_name["int8"]["accuracy"],
                    "onnx_bytes": by_name["onnx"]["size_bytes"], "int8_bytes": by_name["int8"]["size_bytes"],
                    "onnx_b1_ms": by_name["onnx"]["latency_ms"]["1"]["p50"],
                    "int8_b1_ms": by_name["int8"]["latency_ms"]["1"]["p50"],
                    "int8_b256_ms": by_name["int8"]["latency_ms"]["256"]["p50"],
                    "int8_mode": by_name["int8"]["metrics"].get("chosen"),
                })
                _say(f"(b) {stack_path.name} with {framework}: int8 accuracy {rows[-1]['int8_accuracy']:.4f}, "
                     f"{rows[-1]['epoch_seconds'] * 1000:.1f} ms/epoch, ONNX {rows[-1]['onnx_bytes'] / 1024:.1f} KiB, "
                     f"int8 b1 {rows[-1]['int8_b1_ms']:.4f} ms")
    merged = []
    for stack in dict.fromkeys(row["stack"] for row in rows):
        for framework in ("torch", "keras"):
            mine = [row for row in rows if row["stack"] == stack and row["framework"] == framework]
            merged.append({key: (statistics.median(r[key] for r in mine) if isinstance(mine[0][key], float) else
                                 mine[0][key]) for key in mine[0]})
    return merged


# ---------------------------------------------------------------- report
def _markdown(machine: dict, trainer_rows: list[dict], stack_rows: list[dict], args: argparse.Namespace,
              seconds: float) -> str:
    from aios_core import TrainingParams

    interval = args.checkpoint_interval_s
    interval_option = "" if interval is None else f" --checkpoint-interval-s {interval:g}"
    default = TrainingParams.model_fields["checkpoint_interval_s"].default
    interval_text = (f"`checkpoint_interval_s` at its default, {default:g} s: a fit shorter than that is written once, "
                     "at its end" if interval is None else f"`checkpoint_interval_s: {interval:g}`"
                     + (": every epoch, while the next one trains" if interval == 0 else ""))
    lines = [
        "# Keras benchmarks",
        "",
        (f"Written by `benchmarks/keras/run.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{seconds:.0f} s (`--epochs {args.epochs} --repeats {args.repeats} --rows {args.rows} "
        f"--stack-repeats {args.stack_repeats}{interval_option}`)."),
        "",
        "| machine | |", "|---|---|", *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        ("Method: one thread (`OMP_NUM_THREADS=1`, TensorFlow intra-op 1 and inter-op 1, ONNX Runtime 1); "
        "op determinism on for both variants; variants alternate (A, B, A, B, ...) after a warm-up, medians reported."),
        "",
        "## (a) `keras` trainer against a plain `model.fit`",
        "",
        ("Same data, same model (built by the `keras` framework's `aios_build_model`, so both start from the same "
        "weights), same seed, Adam 1e-3, sparse categorical cross-entropy, the same batch size. The plain variant "
        "is `model.fit(x, y, batch_size, epochs, validation_data=(x_val, y_val), validation_batch_size=4096, "
        "shuffle=True, verbose=0)`: the trainer validates in batches of 4096, so the plain run does too and the "
        "ratio measures what the trainer adds, not a validation batch size. "
        "The trainer runs as shipped: its `tf.data` pipeline of seeded per-epoch permutations, 4 progress reports "
        "per epoch, the monitor report and a snapshot of the checkpoint `last.npz` every epoch (copies made on the "
        "training thread), which the kernel's checkpoint writer writes and fsyncs on a background thread when its "
        f"policy says so ({interval_text}). Epoch time is the "
        "median time between successive epoch ends (training pass + validation + what each does per epoch), "
        "epoch 1 (graph tracing) left out. Test accuracy: the trainer's returned (best-val_loss) model, the plain "
        "run's last epoch."),
        "",
        ("| data | model | train rows | batch | trainer ms/epoch | plain ms/epoch | **ratio** | whole fit ratio "
        "| test accuracy trainer | test accuracy plain |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in trainer_rows:
        lines.append(
            f"| {row['data']} | {row['model']} | {row['rows']} | {row['batch_size']} | "
            f"{row['trainer']['epoch'] * 1000:.1f} | {row['plain']['epoch'] * 1000:.1f} | **{row['ratio']:.3f}** | "
            f"{row['total_ratio']:.3f} | {row['trainer']['accuracy']:.4f} | {row['plain']['accuracy']:.4f} |")
    lines += [
        "",
        ("Target: ratio <= 1.05. `mnist-like` is MNIST-shaped (28x28 rows, upscaled shifted noisy digits): "
        "the shapes and row count of an MNIST epoch without downloading it."),
        "",
        "## (b) The same stack with `framework: torch` and `framework: keras`",
        "",
        ("`aios run` (a subprocess per run) on `examples/digits-torch.yaml` (CNN, 20 epochs with early stopping) and "
        "`examples/mnist-keras.yaml` (the tutorial MLP, 5 epochs, bundled digits), each with its trainer section's "
        "`plugin:` removed and `model.framework` set to each framework: nothing else differs. Epoch time is the "
        "trainers' `seconds` metric (the training pass alone; median over epochs 2..), latencies are the evaluate "
        "phase's batch-1 / batch-256 p50 on one thread."),
        "",
        ("| stack | framework | epochs | ms/epoch | train phase s | ONNX accuracy | int8 accuracy | ONNX KiB | int8 KiB "
        "| ONNX b1 ms | int8 b1 ms | int8 b256 ms | int8 mode |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in stack_rows:
        lines.append(
            f"| {row['stack']} | {row['framework']} | {row['epochs']} | {row['epoch_seconds'] * 1000:.1f} | "
            f"{row['train_phase_seconds']:.1f} | {row['onnx_accuracy']:.4f} | {row['int8_accuracy']:.4f} | "
            f"{row['onnx_bytes'] / 1024:.1f} | {row['int8_bytes'] / 1024:.1f} | {row['onnx_b1_ms']:.4f} | "
            f"{row['int8_b1_ms']:.4f} | {row['int8_b256_ms']:.4f} | {row['int8_mode']} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run in (a)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats per comparison")
    parser.add_argument("--rows", type=int, default=12000, help="training rows of the MNIST-shaped data in (a)")
    parser.add_argument("--stack-repeats", type=int, default=2, help="aios runs per stack and framework in (b)")
    parser.add_argument("--checkpoint-interval-s", type=float, default=None,
                        help="the trainer's checkpoint_interval_s in (a) (default: the trainer's, 10 s; 0: every epoch)")
    parser.add_argument("--skip-stacks", action="store_true", help="only part (a)")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    machine = describe_machine("tensorflow-cpu", "keras", "tf2onnx", "torch", "onnxruntime", "numpy")
    with tempfile.TemporaryDirectory(prefix="aios-keras-bench-") as scratch_name:
        scratch = Path(scratch_name)
        digits = _digits()
        trainer_rows = bench_trainer({"digits": digits, "mnist-like": _mnist_like(digits, args.rows)},
                                     args.epochs, args.repeats, scratch, args.checkpoint_interval_s)
        stack_rows = [] if args.skip_stacks else bench_stacks(scratch, args.stack_repeats)
    machine["load average at end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    from aios_core import write_text

    write_text(args.output, _markdown(machine, trainer_rows, stack_rows, args, time.perf_counter() - started))
    _say(f"wrote {args.output}")


if __name__ == "__main__":
    main()
