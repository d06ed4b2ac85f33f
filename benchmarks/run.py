"""AIOS benchmarks: CLI start-up, trainer overhead, fp32 against int8. Writes benchmarks/RESULTS.md.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/run.py

(a) ``aios plugins list`` (the real console script, in a subprocess) against
    ``python -c "import pluggy"``, interleaved, medians and their ratio (target <= 3).
(b) The ``torch`` trainer, called through ``pm.hook.aios_train`` with a real
    ``RunContext``, against a hand-written PyTorch loop: same data, model, seed,
    optimizer and batch size, one thread; median epoch time and ratio (target <= 1.05).
(c) The default stack run once with ``aios run``: size, accuracy and latency of the
    native, fp32 ONNX and int8 ONNX models from its report, then latency re-measured
    here with ONNX Runtime sessions, interleaved.

The machine is small and shared, so every comparison alternates its variants (A, B, A,
B, ...) so that load spikes hit both alike, and reports medians.
"""

from __future__ import annotations

import os

# One thread everywhere, as the stack runs (threads: 1); set before numpy or torch load.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "RESULTS.md"
BIN = Path(sys.executable).parent

CLI_TARGET_RATIO = 3.0
AIOS_LIST, IMPORT_PLUGGY, PYTHON_PASS = "aios plugins list", 'python -c "import pluggy"', 'python -c "pass"'
TRAINER_TARGET_RATIO = 1.05


# ---------------------------------------------------------------- helpers
def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _say(text: str) -> None:
    print(text, flush=True)


def _child_env() -> dict[str, str]:
    """The environment for subprocesses: one thread, no user overrides of the stack or plugins."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AIOS_EPOCHS", "AIOS_DISABLE_PLUGINS", "AIOS_STRICT_PLUGINS", "AIOS_TRACE_PLUGINS")}
    return env


# ---------------------------------------------------------------- machine
def machine() -> dict[str, str]:
    """What the figures were measured on."""
    from importlib.metadata import version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "torch": version("torch"),
        "onnxruntime": version("onnxruntime"),
        "numpy": version("numpy"),
        "pluggy": version("pluggy"),
        "commit": commit,
    }


def _load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


# ---------------------------------------------------------------- (a) CLI start-up
@dataclass
class StartupResult:
    repeats: int
    medians: dict[str, float]
    spreads: dict[str, tuple[float, float]]
    ratio: float
    phases: dict[str, float]
    distributions: int
    top_level_imports: list[tuple[str, float]]
    self_imports: list[tuple[str, float]]


_PHASES_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import click
t1 = time.perf_counter()
import aios_core.cli
t2 = time.perf_counter()
import aios_core.plugins, importlib.metadata
t3 = time.perf_counter()
import packaging.requirements, packaging.specifiers
t4 = time.perf_counter()
entries = aios_core.plugins.discover()
t5 = time.perf_counter()
import io, contextlib
with contextlib.redirect_stdout(io.StringIO()):
    aios_core.cli.main(["plugins", "list"], standalone_mode=False)
t6 = time.perf_counter()
count = sum(1 for _ in importlib.metadata.distributions())
print(json.dumps({"import click": t1 - t0, "import aios_core.cli (rest)": t2 - t1,
                  "import aios_core.plugins + importlib.metadata": t3 - t2,
                  "import packaging (requirements, specifiers)": t4 - t3,
                  "discover(): scan installed metadata": t5 - t4,
                  "click dispatch + print the table": t6 - t5, "distributions": count}))
"""


def _importtime(repeats: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Median ``-X importtime`` figures of ``aios plugins list``.

    Returns the imports the command makes itself (depth 0, by cumulative time) each followed
    by its direct imports over 1 ms (depth 1, names indented), and the modules with the
    largest self time. A module counts under the first import that pulls it in.
    """
    cumulative: dict[tuple[str, str], list[float]] = {}
    own: dict[str, list[float]] = {}
    code = "from aios_core.cli import main; main(['plugins', 'list'])"
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=REPO, env=_child_env(),
                              capture_output=True, text=True)
        children: list[tuple[str, float]] = []
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "[us]" in line:
                continue
            self_us, cumulative_us, raw = line.removeprefix("import time:").split("|", 2)
            name, depth = raw.strip(), (len(raw) - len(raw.lstrip(" ")) - 1) // 2
            own.setdefault(name, []).append(int(self_us) / 1e6)
            if depth == 1:  # printed before its parent
                children.append((name, int(cumulative_us) / 1e6))
            elif depth == 0:
                cumulative.setdefault((name, ""), []).append(int(cumulative_us) / 1e6)
                for child, seconds in children:
                    cumulative.setdefault((name, child), []).append(seconds)
                children = []
    medians = {key: _median(values) for key, values in cumulative.items()}
    tops = sorted((key for key in medians if not key[1]), key=lambda key: -medians[key])
    tree: list[tuple[str, float]] = []
    for top, _ in tops:
        if medians[(top, "")] < 0.001:
            continue
        tree.append((top, medians[(top, "")]))
        kids = sorted((key for key in medians if key[0] == top and key[1] and medians[key] >= 0.001),
                      key=lambda key: -medians[key])
        tree += [(f"&nbsp;&nbsp;&nbsp;&nbsp;{key[1]}", medians[key]) for key in kids]
    heavy = sorted(((name, _median(v)) for name, v in own.items()), key=lambda item: -item[1])
    return tree, heavy[:10]


def bench_startup(repeats: int = 30) -> StartupResult:
    """``aios plugins list`` against ``python -c "import pluggy"`` (and ``python -c pass``), interleaved."""
    commands = {
        AIOS_LIST: [str(BIN / "aios"), "plugins", "list"],
        IMPORT_PLUGGY: [sys.executable, "-c", "import pluggy"],
        PYTHON_PASS: [sys.executable, "-c", "pass"],
    }
    env = _child_env()
    check = subprocess.run(commands[AIOS_LIST], cwd=REPO, env=env, capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit(f"aios plugins list failed ({check.returncode}): {check.stderr.strip()}")
    for first_party in ("aios-torch", "aios-data", "aios-onnx-quant"):
        if first_party not in check.stdout:
            raise SystemExit(f"{first_party} is not installed: pip install -e plugins/{first_party}")
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(3):  # warm the page cache and the bytecode caches
        for argv in commands.values():
            subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(repeats):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            timings[name].append(time.perf_counter() - start)
    medians = {name: _median(values) for name, values in timings.items()}
    spreads = {name: (_percentile(values, 10), _percentile(values, 90)) for name, values in timings.items()}
    ratio = medians[AIOS_LIST] / medians[IMPORT_PLUGGY]

    phase_runs: list[dict[str, float]] = []
    for _ in range(7):
        done = subprocess.run([sys.executable, "-c", _PHASES_SCRIPT], cwd=REPO, env=env, capture_output=True,
                              text=True, check=True)
        phase_runs.append(json.loads(done.stdout))
    distributions = int(phase_runs[0].pop("distributions"))
    for run in phase_runs[1:]:
        run.pop("distributions")
    phases = {name: _median([run[name] for run in phase_runs]) for name in phase_runs[0]}
    top, heavy = _importtime(5)
    return StartupResult(repeats, medians, spreads, ratio, phases, distributions, top, heavy)


def _indented_code(name: str) -> str:
    bare = name.replace("&nbsp;", "")
    return name[: len(name) - len(bare)] + f"`{bare}`"


def _startup_markdown(result: StartupResult) -> str:
    pluggy = result.medians[IMPORT_PLUGGY]
    rows = [[f"`{name}`", _ms(median), f"{_ms(result.spreads[name][0])} - {_ms(result.spreads[name][1])}",
             f"{median / pluggy:.2f}"] for name, median in result.medians.items()]
    verdict = "within" if result.ratio <= CLI_TARGET_RATIO else "**over**"
    parts = [
        "## (a) `aios plugins list` start-up",
        "",
        f"Wall time of each command as a subprocess (`{BIN / 'aios'}` is the installed console script), "
        f"{result.repeats} interleaved repeats after 3 warm-up rounds; all first-party plugins installed.",
        "",
        _table(["command", "median ms", "p10 - p90 ms", "x import pluggy"], rows),
        "",
        f"**Ratio `aios plugins list` / `import pluggy`: {result.ratio:.2f}** (target <= {CLI_TARGET_RATIO:g}: "
        f"{verdict} target).",
        "",
        "Where the time of `aios plugins list` goes, measured inside one process (median of 7; "
        f"the interpreter's own start-up, about the `python -c \"pass\"` figure, comes on top; "
        f"{result.distributions} installed distributions are scanned):",
        "",
        _table(["step", "ms"], [[name, _ms(seconds)] for name, seconds in result.phases.items()]),
        "",
        "`python -X importtime -c \"from aios_core.cli import main; main(['plugins', 'list'])\"` (median of 5): "
        "the imports the command makes itself, by cumulative time (over 1 ms; a module that `import pluggy` "
        "needs too, such as `typing`, counts under the first import that pulls it in):",
        "",
        _table(["module (its direct imports over 1 ms indented)", "cumulative ms"],
               [[_indented_code(name), _ms(seconds)] for name, seconds in result.top_level_imports]),
        "",
        "and the modules with the largest self time:",
        "",
        _table(["module", "self ms"], [[f"`{name}`", _ms(seconds)] for name, seconds in result.self_imports[:8]]),
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------- (b) trainer overhead
_TIMED_FUNCTIONS = ("_train_epoch", "evaluate", "_checkpoint_payload", "_save_checkpoint")
"""Functions of ``aios_torch._training`` timed inside every trainer run (it looks them up as module globals)."""
_TIMED_WRITER_METHODS = ("submit", "wait")
"""Methods of ``aios_torch._training._CheckpointWriter`` timed likewise: the hand-off and the wait for a write."""
_CHECKPOINT_PARTS = ("_checkpoint_payload", "submit", "wait", "_save_checkpoint")
"""What the training thread spends on the checkpoint: the snapshot, the hand-off to the writer thread, waiting
for the previous write, and ``_save_checkpoint`` itself when it runs on the training thread (the synchronous
diagnostic variant)."""


@dataclass
class VariantRuns:
    """Per-epoch timings of one variant over all its repeats (epoch 1 of each run excluded)."""

    epoch: list[float] = field(default_factory=list)
    train_pass: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)
    checkpoint: list[float] = field(default_factory=list)
    rest: list[float] = field(default_factory=list)
    background_write: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    per_repeat: list[float] = field(default_factory=list)
    final_weights: list[dict[str, Any]] = field(default_factory=list)
    test_accuracy_last: list[float] = field(default_factory=list)
    test_accuracy_returned: list[float] = field(default_factory=list)


@dataclass
class TrainingResult:
    architecture: str
    epochs: int
    repeats: int
    trainer: VariantRuns
    plain: VariantRuns
    checkpoint_bytes: int
    checkpoint_anatomy: dict[str, float]
    max_weight_difference: float
    ablation: dict[str, VariantRuns] = field(default_factory=dict)
    ablation_epochs: int = 0
    profile: list[tuple[str, int, float]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return _median(self.trainer.epoch) / _median(self.plain.epoch)

    @property
    def total_ratio(self) -> float:
        return _median(self.trainer.total) / _median(self.plain.total)

    @property
    def ratio_without_checkpoint(self) -> float:
        return (_median(self.trainer.epoch) - _median(self.trainer.checkpoint)) / _median(self.plain.epoch)


@contextmanager
def _epoch_marks(pm: Any) -> Iterator[list[float]]:
    """The times at which ``aios_on_epoch_end`` is called, via pluggy's hook-call monitoring (no monitor registered)."""
    marks: list[float] = []

    def before(hook_name: str, hook_impls: Any, kwargs: Any) -> None:
        if hook_name == "aios_on_epoch_end":
            marks.append(time.perf_counter())

    undo = pm.add_hookcall_monitoring(before, lambda outcome, hook_name, hook_impls, kwargs: None)
    try:
        yield marks
    finally:
        undo()


@dataclass(frozen=True)
class _Span:
    name: str
    start: float
    end: float
    training_thread: bool


@contextmanager
def _timed_calls(targets: list[tuple[Any, str]]) -> Iterator[list[_Span]]:
    """Record the start and end of every call of ``owner.<name>`` (module functions or class methods), and on
    which thread it ran; a few microseconds a call. The trainer runs on the thread that enters this."""
    import threading

    main = threading.get_ident()
    spans: list[_Span] = []
    originals = [(owner, name, getattr(owner, name)) for owner, name in targets]

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spans.append(_Span(name, start, time.perf_counter(), threading.get_ident() == main))
        return wrapper

    for owner, name, function in originals:
        setattr(owner, name, timed(name, function))
    try:
        yield spans
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def _busy_time(spans: list[_Span], names: tuple[str, ...], begin: float, end: float) -> float:
    """Wall time covered by the training thread's calls of ``names`` that start in [begin, end) (nested calls
    counted once)."""
    covered, reach = 0.0, begin
    for span in sorted((s for s in spans if s.training_thread and s.name in names and begin <= s.start < end),
                       key=lambda s: s.start):
        start = max(span.start, reach)
        if span.end > start:
            covered += span.end - start
            reach = span.end
    return covered


CHECKPOINT_VARIANTS = {
    "as shipped": "snapshot on the training thread, `torch.save` through `aios_core.atomic_path` on the writer thread",
    "synchronous": "the same snapshot, written on the training thread (`_CheckpointWriter.submit` swapped for a "
                   "direct `_save_checkpoint` call), as before the writer thread",
    "none": "no checkpoint (`_checkpoint_payload` and `_CheckpointWriter.submit` swapped for no-ops)",
}


@contextmanager
def _checkpoint_variant(module: Any, variant: str) -> Iterator[None]:
    """A diagnostic: run the trainer with its checkpoint changed (the plugin's files are untouched)."""
    if variant == "as shipped":
        yield
        return
    writer = module._CheckpointWriter

    def synchronous(self: Any, payload: Any) -> None:
        self.wait()
        module._save_checkpoint(self.path, payload)

    swaps = {"synchronous": [(writer, "submit", synchronous)],
             "none": [(module, "_checkpoint_payload", lambda *args, **kwargs: None),
                      (writer, "submit", lambda self, payload: None)]}[variant]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in swaps]
    for owner, name, replacement in swaps:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


class _TrainingBench:
    """The default stack's data, framework and trainer, registered in one plugin manager (no monitors)."""

    def __init__(self, scratch: Path) -> None:
        import torch

        from aios_core.plugins import new_plugin_manager, register
        from aios_core.stack import DEFAULT_STACK, load_stack

        torch.set_num_threads(1)
        self.scratch = scratch
        self.stack = load_stack(DEFAULT_STACK)
        self.pm = new_plugin_manager()
        for role in ("data", "model", "trainer"):
            register(self.pm, self.stack.components[role], role)
        self.trainer_params = self.stack.components["trainer"].params
        self.seed = self.stack.settings.seed
        self._runs = 0
        self.dataset = self.pm.hook.aios_load_dataset(run=self.context("data"))
        self.x_test = torch.from_numpy(self.dataset.x_test.astype("float32"))
        self.y_test = torch.from_numpy(self.dataset.y_test.astype("int64"))
        self.last_checkpoint: Path | None = None

    def context(self, phase: str) -> Any:
        from aios_core import RunContext

        self._runs += 1
        run_dir = self.scratch / f"run-{self._runs:03d}"
        run_dir.mkdir(parents=True)
        context = RunContext(name=self.stack.name, seed=self.seed, threads=1, dir=run_dir,
                             stack=self.stack.resolved, hook=self.pm.hook)
        context.phase = phase
        return context

    def build(self, architecture: str) -> Any:
        overrides = {} if architecture == "cnn" else {"architecture": architecture}
        return self.pm.hook.aios_build_model(dataset=self.dataset, run=self.context("train"), overrides=overrides)

    def test_accuracy(self, model: Any) -> float:
        import torch

        model.eval()
        with torch.inference_mode():
            return float((model(self.x_test).argmax(dim=1) == self.y_test).float().mean())

    # ------------------------------------------------------------ the two variants
    def run_trainer(self, architecture: str, epochs: int, into: VariantRuns | None, *,
                    checkpoint: str = "as shipped", overrides: dict[str, Any] | None = None) -> None:
        """The trainer through ``pm.hook.aios_train``; epochs are timed between ``aios_on_epoch_end`` calls.

        ``checkpoint`` other than "as shipped" swaps the trainer's checkpoint for a diagnostic
        variant (see ``_checkpoint_variant``); ``overrides`` are trainer parameters.
        """
        import torch
        from aios_torch import _training

        model = self.build(architecture)
        run = self.context("train")
        overrides = {"epochs": epochs, "early_stopping_patience": None, **(overrides or {})}
        targets = [(_training, name) for name in _TIMED_FUNCTIONS]
        targets += [(_training._CheckpointWriter, name) for name in _TIMED_WRITER_METHODS]
        with _checkpoint_variant(_training, checkpoint), _epoch_marks(self.pm) as marks, \
                _timed_calls(targets) as spans:
            started = time.perf_counter()
            result = self.pm.hook.aios_train(model=model, dataset=self.dataset, run=run, overrides=overrides)
            total = time.perf_counter() - started  # the trainer waits for its last write before it returns
        if into is None:
            return
        # Window i (epochs 2..n) runs from one epoch report to the next: the snapshot and hand-off of
        # epoch i-1's checkpoint, epoch i's training pass, validation and bookkeeping, and the wait
        # for epoch i-1's write to finish (the trainer waits for it before it reports epoch i).
        windows = list(zip(marks, marks[1:]))
        intervals = [end - begin for begin, end in windows]
        trains = [_busy_time(spans, ("_train_epoch",), begin, end) for begin, end in windows]
        evals = [_busy_time(spans, ("evaluate",), begin, end) for begin, end in windows]
        checkpoints = [_busy_time(spans, _CHECKPOINT_PARTS, begin, end) for begin, end in windows]
        into.epoch += intervals
        into.per_repeat.append(_median(intervals))
        into.total.append(total)
        into.train_pass += trains
        into.validation += evals
        into.checkpoint += checkpoints
        into.rest += [interval - train - valid - write
                      for interval, train, valid, write in zip(intervals, trains, evals, checkpoints)]
        into.background_write += [s.end - s.start for s in spans
                                  if s.name == "_save_checkpoint" and not s.training_thread]
        if checkpoint != "as shipped":
            return
        self.last_checkpoint = run.checkpoint_dir / _training.CHECKPOINT_NAME
        into.test_accuracy_returned.append(self.test_accuracy(result.model))
        state = torch.load(self.last_checkpoint, map_location="cpu", weights_only=True)["model"]
        last = self.build(architecture)
        last.load_state_dict(state)
        into.final_weights.append(state)
        into.test_accuracy_last.append(self.test_accuracy(last))

    def run_plain(self, architecture: str, epochs: int, into: VariantRuns | None) -> None:
        """A hand-written loop: seeded shuffle, sliced batches, Adam, validation each epoch, no checkpoints."""
        import torch
        from torch.nn import functional as F

        params = self.trainer_params
        model = self.build(architecture)
        began = time.perf_counter()  # as the trainer's total: from its tensors and optimizer to the last epoch
        x = torch.from_numpy(self.dataset.x_train.astype("float32"))
        y = torch.from_numpy(self.dataset.y_train.astype("int64"))
        x_val = torch.from_numpy(self.dataset.x_val.astype("float32"))
        y_val = torch.from_numpy(self.dataset.y_val.astype("int64"))
        torch.manual_seed(self.seed)  # dropout draws from the global generator, as in the trainer
        generator = torch.Generator().manual_seed(self.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
        batch = params.batch_size
        epoch_times, train_times, val_times = [], [], []
        for _ in range(epochs):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(y), generator=generator)
            xs, ys = x[order], y[order]
            total = torch.zeros(())
            for begin in range(0, len(y), batch):
                inputs, targets = xs[begin:begin + batch], ys[begin:begin + batch]
                loss = F.cross_entropy(model(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(targets)
            train_loss = float(total) / len(y)
            trained = time.perf_counter()
            model.eval()
            with torch.inference_mode():
                logits = model(x_val)
                val_loss = F.cross_entropy(logits, y_val).item()
                val_accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
            finished = time.perf_counter()
            del train_loss, val_loss, val_accuracy  # what a real loop computes and logs; not reported here
            epoch_times.append(finished - started)
            train_times.append(trained - started)
            val_times.append(finished - trained)
        total = time.perf_counter() - began
        if into is not None:
            into.total.append(total)
            into.epoch += epoch_times[1:]
            into.per_repeat.append(_median(epoch_times[1:]))
            into.train_pass += train_times[1:]
            into.validation += val_times[1:]
            into.final_weights.append({name: value.detach().clone() for name, value in model.state_dict().items()})
            into.test_accuracy_last.append(self.test_accuracy(model))

    # ------------------------------------------------------------ where the trainer's time goes
    def checkpoint_anatomy(self, repeats: int = 15) -> dict[str, float]:
        """The last checkpoint's payload written three ways, interleaved: to memory, to a file, atomically."""
        import io

        import torch

        from aios_core import atomic_path

        assert self.last_checkpoint is not None
        payload = torch.load(self.last_checkpoint, map_location="cpu", weights_only=True)
        target = self.scratch / "anatomy" / "last.pt"
        target.parent.mkdir(parents=True, exist_ok=True)

        def atomic() -> None:
            with atomic_path(target) as tmp:
                torch.save(payload, tmp)

        ways = {
            "`torch.save` to memory (serialization alone)": lambda: torch.save(payload, io.BytesIO()),
            "`torch.save` to a file (no fsync)": lambda: torch.save(payload, target),
            "`torch.save` through `aios_core.atomic_path` (temp file, fsync, rename), as the trainer": atomic,
        }
        spent: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeats):
            for name, write in ways.items():
                start = time.perf_counter()
                write()
                spent[name].append(time.perf_counter() - start)
        return {name: _median(values) for name, values in spent.items()}

    def profile(self, architecture: str, epochs: int) -> list[tuple[str, int, float]]:
        """cProfile of one trainer run: the trainer's own calls and what they cost, per epoch."""
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        self.run_trainer(architecture, epochs, None)
        profiler.disable()
        stats = pstats.Stats(profiler)
        wrappers = {"train", "_train", "aios_train", "wrapper"}  # the whole run, or the benchmark's timers
        names = ("fsync", "posix.replace", "mkstemp", "clone", "state_dict", "report_", "model_validate",
                 "model_dump", "torch.save", "serialization.py")
        rows = []
        for (filename, line, function), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
            ours = ("aios_torch" in filename or "aios_core" in filename) and function not in wrappers
            if ours or any(name in function or name in filename for name in names):
                short = filename.split("site-packages/")[-1].split(str(REPO) + "/")[-1]
                label = function if filename == "~" else f"{short}:{line}({function})"
                rows.append((label, calls, cumulative / epochs))
        rows.sort(key=lambda row: -row[2])
        return rows[:20]


def bench_training(architecture: str, epochs: int, repeats: int, scratch: Path) -> TrainingResult:
    """The trainer against the plain loop, interleaved (A, B, A, B, ...), after one short warm-up of each."""
    bench = _TrainingBench(scratch)
    bench.run_trainer(architecture, 2, None)
    bench.run_plain(architecture, 2, None)
    trainer, plain = VariantRuns(), VariantRuns()
    for repeat in range(repeats):
        bench.run_trainer(architecture, epochs, trainer)
        bench.run_plain(architecture, epochs, plain)
        _say(f"  {architecture} repeat {repeat + 1}/{repeats}: trainer {_ms(trainer.per_repeat[-1])} ms/epoch, "
             f"plain {_ms(plain.per_repeat[-1])} ms/epoch")
    difference = max(float((ours[name] - theirs[name]).abs().max())
                     for ours, theirs in zip(trainer.final_weights, plain.final_weights) for name in ours)
    checkpoint_bytes = bench.last_checkpoint.stat().st_size if bench.last_checkpoint else 0
    result = TrainingResult(architecture, epochs, repeats, trainer, plain, checkpoint_bytes,
                            bench.checkpoint_anatomy(), difference)
    _say(f"  {architecture}: the trainer with its checkpoint and progress reports varied, interleaved ...")
    result.ablation_epochs = min(epochs, 12)
    result.ablation = _ablation(bench, architecture, result.ablation_epochs, repeats=3)
    if result.ratio > TRAINER_TARGET_RATIO:
        _say(f"  {architecture}: over target; profiling one more trainer run ...")
        result.profile = bench.profile(architecture, epochs)
    return result


ABLATION = {
    "trainer as shipped (checkpoint written on the writer thread)": ("as shipped", {}),
    "trainer, checkpoint written on the training thread": ("synchronous", {}),
    "trainer, no checkpoint": ("none", {}),
    "trainer, no checkpoint, `progress_updates: 0`": ("none", {"progress_updates": 0}),
}


def _ablation(bench: _TrainingBench, architecture: str, epochs: int, repeats: int) -> dict[str, VariantRuns]:
    """The trainer with parts of its per-epoch work changed or removed, and the plain loop, all interleaved."""
    names = [*ABLATION, "plain PyTorch loop"]
    runs = {name: VariantRuns() for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)  # rotate the order, so that no variant always runs first or last
        for name in names[shift:] + names[:shift]:
            if name in ABLATION:
                checkpoint, overrides = ABLATION[name]
                bench.run_trainer(architecture, epochs, runs[name], checkpoint=checkpoint, overrides=overrides)
            else:
                bench.run_plain(architecture, epochs, runs[name])
    return runs


def _training_markdown(results: list[TrainingResult], stack_summary: str) -> str:
    parts = [
        "## (b) `torch` trainer against a plain PyTorch loop",
        "",
        f"Default stack ({stack_summary}); digits from the `sklearn` datastore (standardized, the stack's "
        "seeded 70/15/15 split). Both variants build their model through the `torch` framework's "
        "`aios_build_model` hook (same seed, so the same initial weights), shuffle with a "
        "`torch.Generator` seeded alike, train with Adam (lr 1e-3), batch 64, cross-entropy, 1 thread, "
        "and validate every epoch. The trainer runs through `pm.hook.aios_train` with a real `RunContext` "
        "in a temporary run directory and **no monitors registered**. Its epoch is the wall time between two "
        "of its `aios_on_epoch_end` hook calls (observed with pluggy's `add_hookcall_monitoring`): everything "
        "the training thread does per epoch, including its checkpoint work (the snapshot of `last.pt`'s "
        "contents, the hand-off to the writer thread and, before the next report, waiting until the previous "
        "write is on disk); the write itself (`torch.save` through `aios_core.atomic_path`: temp file, fsync, "
        "rename) runs on the writer thread, overlapping the next epoch. Its total is the wall time of the "
        "whole `aios_train` call, which returns only after the last write is on disk; the plain loop's total "
        "runs from making its tensors and optimizer to the end of its last epoch. Inside the trainer runs, "
        "`_train_epoch`, `evaluate`, `_checkpoint_payload`, `_save_checkpoint` and the writer's `submit` and "
        "`wait` are timed (microseconds each) to split each epoch. The plain loop writes no checkpoint. Early "
        "stopping is off so both run every epoch. Epoch 1 of every run is left out of the per-epoch figures "
        "(warm-up); medians pool the other epochs of all repeats, run trainer, plain, trainer, plain, ...",
        "",
    ]
    for result in results:
        trainer, plain = result.trainer, result.plain
        verdict = "within" if result.ratio <= TRAINER_TARGET_RATIO else "**over**"
        total_verdict = "within" if result.total_ratio <= TRAINER_TARGET_RATIO else "**over**"
        per_repeat = [t / p for t, p in zip(trainer.per_repeat, plain.per_repeat)]
        per_repeat_total = [t / p for t, p in zip(trainer.total, plain.total)]
        same = ("identical" if result.max_weight_difference == 0
                else f"equal to within {result.max_weight_difference:.1e} (largest absolute difference)")
        epoch = _median(trainer.epoch)
        rows = [
            ["torch trainer (`aios_train`)", _ms(epoch), _ms(_median(trainer.train_pass)),
             _ms(_median(trainer.validation)), _ms(_median(trainer.checkpoint)), _ms(_median(trainer.rest)),
             _ms(_median(trainer.total)), f"{statistics.mean(trainer.test_accuracy_last):.4f}",
             f"{statistics.mean(trainer.test_accuracy_returned):.4f}"],
            ["plain PyTorch loop", _ms(_median(plain.epoch)), _ms(_median(plain.train_pass)),
             _ms(_median(plain.validation)), "-", "-", _ms(_median(plain.total)),
             f"{statistics.mean(plain.test_accuracy_last):.4f}", "-"],
        ]
        anatomy = [[name, _ms(seconds)] for name, seconds in result.checkpoint_anatomy.items()]
        parts += [
            f"### {result.architecture.upper()} ({result.epochs} epochs x {result.repeats} repeats per variant)",
            "",
            _table(["variant", "epoch ms", "training pass ms", "validation ms", "checkpoint ms (training thread)",
                    "rest ms", f"total ms ({result.epochs} epochs)", "test acc. (last epoch)",
                    "test acc. (returned model)"], rows),
            "",
            f"**Ratio trainer / plain (median epoch): {result.ratio:.3f}** (target <= {TRAINER_TARGET_RATIO}: "
            f"{verdict} target); per repeat: {', '.join(f'{r:.3f}' for r in per_repeat)}. "
            f"**Total fit time: {result.total_ratio:.3f}** ({total_verdict} target; per repeat: "
            f"{', '.join(f'{r:.3f}' for r in per_repeat_total)}; it includes epoch 1, the trainer's set-up and the "
            f"wait for its last write). Training pass alone: "
            f"{_median(trainer.train_pass) / _median(plain.train_pass):.3f}; validation alone: "
            f"{_median(trainer.validation) / _median(plain.validation):.3f}. Without its checkpoint work the "
            f"trainer's epoch would be {result.ratio_without_checkpoint:.3f} x the plain loop's. The checkpoint "
            f"write on the writer thread took {_ms(_median(trainer.background_write))} ms (median), overlapping "
            "the next epoch. All columns are medians over epochs, so they need not add up exactly; \"rest\" is "
            "the per-epoch remainder (best-weights copy when val_loss improves, metrics, `report_epoch`, loop).",
            "",
            f"Final weights of the two variants: {same}. The returned model holds the weights of the trainer's "
            "lowest-val_loss epoch; the last-epoch figure loads its `last.pt` checkpoint.",
            "",
            f"The checkpoint (`last.pt`, {result.checkpoint_bytes / 1024:.0f} KiB: model, Adam state, best "
            "weights (stored once when the last epoch is the best), generator and RNG states), written again "
            "here on the main thread, interleaved, median of 15; this is the writer thread's work per epoch:",
            "",
            _table(["write", "ms"], anatomy),
            "",
        ]
        if result.ablation:
            plain_runs = result.ablation["plain PyTorch loop"]
            plain_epoch, plain_total = _median(plain_runs.epoch), _median(plain_runs.total)
            rows = [[name, _ms(_median(runs.epoch)), _ms(_median(runs.train_pass)),
                     _ms(_median(runs.checkpoint)) if runs.checkpoint and "no checkpoint" not in name else "-",
                     _ms(_median(runs.total)), f"{_median(runs.epoch) / plain_epoch:.3f}",
                     f"{_median(runs.total) / plain_total:.3f}"] for name, runs in result.ablation.items()]
            parts += [
                f"The trainer again with its checkpoint and progress reports varied, all variants interleaved "
                f"({result.ablation_epochs} epochs x 3 repeats each, the order rotated each repeat). The swaps are "
                "made in this process only; "
                "\"written on the training thread\" is the trainer before the writer thread (the same snapshot, "
                "then `torch.save` + fsync + rename before the next epoch starts); `progress_updates: 0` is an "
                "ordinary trainer parameter (no `run.report_step` calls):",
                "",
                _table(["variant", "epoch ms", "training pass ms", "checkpoint ms (training thread)",
                        f"total ms ({result.ablation_epochs} epochs)", "x plain (epoch)", "x plain (total)"], rows),
                "",
            ]
        if result.profile:
            parts += [
                "Over target, so cProfile of one more trainer run (training thread only): the trainer's own "
                "functions and the checkpoint's parts (cumulative ms per epoch; profiling inflates Python-level "
                "calls):",
                "",
                _table(["function", "calls", "cumulative ms/epoch"],
                       [[f"`{name}`", calls, f"{seconds * 1000:.3f}"] for name, calls, seconds in result.profile]),
                "",
            ]
    return "\n".join(parts)


# ---------------------------------------------------------------- (c) fp32 against int8
@dataclass
class QuantizationResult:
    run_dir: Path
    run_seconds: float
    evaluation: dict[str, Any]
    compress: dict[str, Any]
    train: dict[str, Any]
    latencies: dict[str, dict[int, list[float]]]
    cold_latencies: dict[str, dict[int, list[float]]]
    accuracies: dict[str, float]
    sizes: dict[str, int]
    runs: dict[int, int]


def bench_quantization(scratch: Path, runs_b1: int = 4000, runs_b256: int = 300) -> QuantizationResult:
    """Run the default stack once, read its report, and re-measure latency with ONNX Runtime sessions."""
    import numpy as np
    import onnxruntime as ort

    from aios_core import ModelArtifact, RunContext
    from aios_core.plugins import new_plugin_manager, register
    from aios_core.stack import DEFAULT_STACK, load_stack

    runs_root = scratch / "runs"
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "aios"), "run", "--runs-dir", str(runs_root)], cwd=REPO, env=_child_env(),
                          capture_output=True, text=True)
    run_seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"aios run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    (run_dir,) = [path for path in runs_root.iterdir() if path.is_dir()]
    evaluation = json.loads((run_dir / "report" / "evaluation.json").read_text())
    state = json.loads((run_dir / "state.json").read_text())
    compress = state["phases"]["compress"]["artifacts"][0]["metrics"]
    train = state["phases"]["train"]

    # The same test rows the run used: the default stack's datastore with the run's seed.
    stack = load_stack(DEFAULT_STACK)
    pm = new_plugin_manager()
    register(pm, stack.components["data"], "data")
    register(pm, stack.components["model"], "model")
    context = RunContext(name=stack.name, seed=stack.settings.seed, threads=1, dir=scratch, stack=stack.resolved,
                         hook=pm.hook)
    dataset = pm.hook.aios_load_dataset(run=context)
    recorded = json.loads((run_dir / "data.json").read_text())["content_hash"]
    if dataset.content_hash != recorded:
        raise SystemExit(f"the data differ from the run's ({dataset.content_hash[:12]} != {recorded[:12]})")
    x_test = np.ascontiguousarray(dataset.x_test, dtype=np.float32)

    def onnx_session(path: Path) -> Callable[[np.ndarray], np.ndarray]:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {input_name: batch})[0]

    artifacts = run_dir / "artifacts"
    native = ModelArtifact(name="native", path=artifacts / "model.torch", format="torch", producer="torch")
    predictors = {
        "onnx fp32": onnx_session(artifacts / "model.onnx"),
        "onnx int8": onnx_session(artifacts / "model.int8.onnx"),
        "torch native": pm.hook.aios_load_predictor(artifact=native, threads=1),
    }
    sizes = {"onnx fp32": (artifacts / "model.onnx").stat().st_size,
             "onnx int8": (artifacts / "model.int8.onnx").stat().st_size,
             "torch native": native.path.stat().st_size}
    accuracies = {name: float((predict(x_test).argmax(axis=1) == dataset.y_test).mean())
                  for name, predict in predictors.items()}
    runs = {1: runs_b1, 256: runs_b256}
    latencies: dict[str, dict[int, list[float]]] = {name: {} for name in predictors}
    cold: dict[str, dict[int, list[float]]] = {name: {} for name in predictors}
    for size, count in runs.items():
        batch = np.ascontiguousarray(np.resize(x_test, (size, x_test.shape[1])), dtype=np.float32)
        for predict in predictors.values():
            for _ in range(20):
                predict(batch)
        warm = _interleaved_latencies(predictors, batch, count, block=100 if size == 1 else 10)
        rotated = _rotated_latencies(predictors, batch, count // 2)
        for name in predictors:
            latencies[name][size], cold[name][size] = warm[name], rotated[name]
    return QuantizationResult(run_dir, run_seconds, evaluation, compress, train, latencies, cold, accuracies, sizes, runs)


def _timed_call(predict: Callable[[Any], Any], batch: Any, into: list[float]) -> None:
    start = time.perf_counter()
    predict(batch)
    into.append(time.perf_counter() - start)


def _interleaved_latencies(predictors: dict[str, Callable[[Any], Any]], batch: Any, count: int,
                           block: int) -> dict[str, list[float]]:
    """``count`` timed calls per model: the ONNX models alternate call by call (A, B, A, B, ...);
    the torch predictor runs in blocks of ``block`` calls between blocks of ONNX calls, because a
    torch call between two ONNX calls evicts their weights from the CPU caches."""
    onnx = {name: predict for name, predict in predictors.items() if name.startswith("onnx")}
    others = {name: predict for name, predict in predictors.items() if name not in onnx}
    timings: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(max(1, count // block)):
        for _ in range(block):
            for name, predict in onnx.items():
                _timed_call(predict, batch, timings[name])
        for name, predict in others.items():
            for _ in range(block):
                _timed_call(predict, batch, timings[name])
    return timings


def _rotated_latencies(predictors: dict[str, Callable[[Any], Any]], batch: Any, count: int) -> dict[str, list[float]]:
    """Every model called in turn, one call each (so each call finds the others' data in the caches)."""
    timings: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(count):
        for name, predict in predictors.items():
            _timed_call(predict, batch, timings[name])
    return timings


def _quantization_markdown(result: QuantizationResult) -> str:
    by_name = {artifact["name"]: artifact for artifact in result.evaluation["artifacts"]}
    fp32, int8, native = by_name["onnx"], by_name["int8"], by_name["native"]

    def p50(artifact: dict[str, Any], size: int) -> float:
        return artifact["latency_ms"][str(size)]["p50"]

    labels = {"native": "torch native (`model.torch`)", "onnx": "ONNX fp32 (`model.onnx`)",
              "int8": "ONNX int8 (`model.int8.onnx`)"}
    report_rows = [[labels[a["name"]], f"{a['size_bytes']:,}", f"{a['accuracy']:.4f}",
                    f"{p50(a, 1):.4f}", f"{p50(a, 256):.3f}"] for a in (native, fp32, int8)]
    variants = result.compress["variants"]
    chosen = result.compress["chosen"]
    ours = {name: {size: _median(values) * 1000 for size, values in per_size.items()}
            for name, per_size in result.latencies.items()}
    ours90 = {name: {size: _percentile(values, 90) * 1000 for size, values in per_size.items()}
              for name, per_size in result.latencies.items()}
    rotated = {name: {size: _median(values) * 1000 for size, values in per_size.items()}
               for name, per_size in result.cold_latencies.items()}
    measured_rows = [[name, f"{result.sizes[name]:,}", f"{result.accuracies[name]:.4f}",
                      f"{ours[name][1]:.4f} / {ours90[name][1]:.4f}", f"{ours[name][256]:.3f} / {ours90[name][256]:.3f}",
                      f"{rotated[name][1]:.4f}", f"{rotated[name][256]:.3f}"]
                     for name in ("torch native", "onnx fp32", "onnx int8")]
    report_speedup = {size: p50(fp32, size) / p50(int8, size) for size in (1, 256)}
    our_speedup = {size: ours["onnx fp32"][size] / ours["onnx int8"][size] for size in (1, 256)}
    parts = [
        "## (c) fp32 against int8 (default stack)",
        "",
        f"`aios run --runs-dir <tmp>` of the bundled default stack (`onnx-quant` mode auto): "
        f"{result.run_seconds:.1f} s wall; trained {len(result.train['history'])} epochs"
        f"{' (stopped early)' if result.train['stopped_early'] else ''}, best epoch {result.train['best_epoch']}. The compressor built static (QDQ) and "
        f"dynamic int8 models and kept **{chosen}** (validation accuracy fp32 "
        f"{variants['fp32']['val_accuracy']:.4f}, static {variants['static']['val_accuracy']:.4f}, dynamic "
        f"{variants['dynamic']['val_accuracy']:.4f}; its batch-1 p50: fp32 {variants['fp32']['latency_ms_b1']:.4f} ms, "
        f"static {variants['static']['latency_ms_b1']:.4f} ms, dynamic {variants['dynamic']['latency_ms_b1']:.4f} ms).",
        "",
        f"From the run's `report/evaluation.json` (test split, {result.evaluation['test_rows']} rows; latency p50 over "
        f"{fp32['latency_ms']['1']['runs']} batch-1 / {fp32['latency_ms']['256']['runs']} batch-256 calls per model, "
        "models measured one after the other):",
        "",
        _table(["model", "size bytes", "test accuracy", "batch-1 p50 ms", "batch-256 p50 ms"], report_rows),
        "",
        f"int8 / fp32 ONNX: size **{int8['size_bytes'] / fp32['size_bytes']:.3f}**, accuracy drop "
        f"**{fp32['accuracy'] - int8['accuracy']:+.4f}**, speed-up batch-1 **{report_speedup[1]:.2f}x**, "
        f"batch-256 **{report_speedup[256]:.2f}x**. fp32 ONNX vs torch native: batch-1 "
        f"{p50(native, 1) / p50(fp32, 1):.2f}x, batch-256 {p50(native, 256) / p50(fp32, 256):.2f}x faster.",
        "",
        f"Re-measured here: ONNX Runtime sessions (`ORT_ENABLE_ALL`, intra-op 1 thread, inter-op 1, CPU provider) "
        f"and the framework's own torch predictor (`aios_load_predictor`, 1 thread); {result.runs[1]} batch-1 and "
        f"{result.runs[256]} batch-256 calls per model after 20 warm-up calls, on the evaluation's batches "
        "(`np.resize` of the test rows). fp32 and int8 ONNX alternate call by call; the torch calls run in "
        "blocks (100 batch-1 / 10 batch-256 calls) between blocks of ONNX calls. The last two columns call the "
        f"three models strictly in turn ({result.runs[1] // 2} / {result.runs[256] // 2} rounds), so every call "
        "follows the other models' calls and finds its own weights evicted from the CPU caches:",
        "",
        _table(["model", "size bytes", "test accuracy", "batch-1 p50 / p90 ms", "batch-256 p50 / p90 ms",
                "batch-1 p50, in turn", "batch-256 p50, in turn"], measured_rows),
        "",
        f"int8 speed-up over fp32 ONNX (p50): batch-1 **{our_speedup[1]:.2f}x**, batch-256 **{our_speedup[256]:.2f}x**; "
        f"fp32 ONNX over torch native: batch-1 {ours['torch native'][1] / ours['onnx fp32'][1]:.2f}x, "
        f"batch-256 {ours['torch native'][256] / ours['onnx fp32'][256]:.2f}x. Called in turn with the others: int8 "
        f"over fp32 batch-1 {rotated['onnx fp32'][1] / rotated['onnx int8'][1]:.2f}x, batch-256 "
        f"{rotated['onnx fp32'][256] / rotated['onnx int8'][256]:.2f}x.",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------- report
def _markdown(info: dict[str, str], loads: tuple[str, str], seconds: float, sections: list[str],
              findings: list[str]) -> str:
    header = [
        "# AIOS benchmarks",
        "",
        f"Written by `benchmarks/run.py` on {time.strftime('%Y-%m-%d %H:%M %Z')} in {seconds:.0f} s. "
        "See `benchmarks/README.md` for what each part measures.",
        "",
        _table(["machine", ""], [[key, value] for key, value in info.items()]
               + [["load average (1/5/15 min) at start / end", f"{loads[0]} / {loads[1]}"]]),
        "",
        "Method: one thread everywhere (`OMP_NUM_THREADS=1`, `torch.set_num_threads(1)`, ONNX Runtime intra-op 1); "
        "the machine is shared, so compared variants alternate (A, B, A, B, ...) and medians are reported.",
        "",
        "## Summary",
        "",
        *findings,
        "",
    ]
    return "\n".join(header + [section + "\n" for section in sections])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli-repeats", type=int, default=30, help="Repeats of each command in (a).")
    parser.add_argument("--epochs", type=int, default=20, help="Epochs per training run in (b).")
    parser.add_argument("--repeats", type=int, default=3, help="Training runs per variant in (b).")
    parser.add_argument("--no-mlp", action="store_true", help="Measure only the default stack's CNN in (b).")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where to write the Markdown results.")
    args = parser.parse_args(argv)
    from aios_core import write_text

    os.chdir(REPO)
    began, load_start = time.perf_counter(), _load_average()
    info = machine()
    _say("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))

    _say(f"(a) aios plugins list vs import pluggy, {args.cli_repeats} interleaved repeats ...")
    startup = bench_startup(args.cli_repeats)
    for name, median in startup.medians.items():
        _say(f"  {name:<28} median {_ms(median)} ms")
    _say(f"  ratio aios plugins list / import pluggy: {startup.ratio:.2f} (target <= {CLI_TARGET_RATIO:g})")

    with tempfile.TemporaryDirectory(prefix="aios-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        _say(f"(b) torch trainer vs plain loop, {args.epochs} epochs x {args.repeats} repeats per variant ...")
        architectures = ["cnn"] if args.no_mlp else ["cnn", "mlp"]
        training = [bench_training(arch, args.epochs, args.repeats, scratch / arch) for arch in architectures]
        for result in training:
            _say(f"  {result.architecture}: trainer {_ms(_median(result.trainer.epoch))} ms/epoch, plain "
                 f"{_ms(_median(result.plain.epoch))} ms/epoch, ratio {result.ratio:.3f} "
                 f"(target <= {TRAINER_TARGET_RATIO}); test accuracy trainer "
                 f"{statistics.mean(result.trainer.test_accuracy_last):.4f} (returned model "
                 f"{statistics.mean(result.trainer.test_accuracy_returned):.4f}), plain "
                 f"{statistics.mean(result.plain.test_accuracy_last):.4f}")
            trainer = result.trainer
            _say(f"    total fit time: trainer {_ms(_median(trainer.total))} ms, plain {_ms(_median(result.plain.total))} "
                 f"ms, ratio {result.total_ratio:.3f}")
            _say(f"    trainer parts (median ms): training pass {_ms(_median(trainer.train_pass))}, validation "
                 f"{_ms(_median(trainer.validation))}, checkpoint on the training thread "
                 f"{_ms(_median(trainer.checkpoint))}, rest {_ms(_median(trainer.rest))}; write on the writer thread "
                 f"{_ms(_median(trainer.background_write))}; plain: training pass "
                 f"{_ms(_median(result.plain.train_pass))}, validation {_ms(_median(result.plain.validation))}; "
                 f"ratio without the checkpoint {result.ratio_without_checkpoint:.3f}; final weights differ by "
                 f"<= {result.max_weight_difference:.1e}")
            for name, seconds in result.checkpoint_anatomy.items():
                _say(f"    checkpoint payload, {name}: {_ms(seconds)} ms")
        _say("(c) default stack: aios run, then fp32 vs int8 latency re-measured ...")
        quantization = bench_quantization(scratch / "quant")
        _say(f"  aios run took {quantization.run_seconds:.1f} s; int8 chosen: {quantization.compress['chosen']}")
        for name, per_size in quantization.latencies.items():
            _say(f"  {name:<13} size {quantization.sizes[name]:>8,} B  accuracy {quantization.accuracies[name]:.4f}  "
                 f"b1 p50 {_median(per_size[1]) * 1000:.4f} ms  b256 p50 {_median(per_size[256]) * 1000:.3f} ms")

    components = load_stack_summary()
    findings = _findings(startup, training, quantization)
    for line in findings:
        _say(line)
    seconds = time.perf_counter() - began
    text = _markdown(info, (load_start, _load_average()), seconds,
                     [_startup_markdown(startup), _training_markdown(training, components),
                      _quantization_markdown(quantization)], findings)
    write_text(args.output, text)
    _say(f"wrote {args.output} ({seconds:.0f} s)")
    return 0


def load_stack_summary() -> str:
    """The default stack's model and trainer settings, as one line."""
    from aios_core.stack import DEFAULT_STACK, load_stack

    resolved = load_stack(DEFAULT_STACK).resolved
    model, trainer = resolved["model"], resolved["trainer"]
    return (f"CNN conv {model['conv_channels']}, hidden {model['hidden_units']}, dropout {model['dropout']}; "
            f"MLP: the same with `architecture: mlp`; {trainer['optimizer']} lr {trainer['learning_rate']}, "
            f"batch {trainer['batch_size']}")


def _findings(startup: StartupResult, training: list[TrainingResult], quantization: QuantizationResult) -> list[str]:
    lines = [f"- (a) `aios plugins list` {_ms(startup.medians[AIOS_LIST])} ms vs `import pluggy` "
             f"{_ms(startup.medians[IMPORT_PLUGGY])} ms: ratio **{startup.ratio:.2f}** "
             f"(target <= {CLI_TARGET_RATIO:g}{', over' if startup.ratio > CLI_TARGET_RATIO else ', met'})."]
    if startup.ratio > CLI_TARGET_RATIO:
        phases = startup.phases
        lines.append(
            f"  - Cause: the command's imports (both commands pay the same ~{_ms(startup.medians[PYTHON_PASS])} ms "
            f"interpreter start-up): `click` "
            f"{_ms(phases['import click'])} ms, `importlib.metadata` with `aios_core.plugins` "
            f"{_ms(phases['import aios_core.plugins + importlib.metadata'])} ms (discovery needs it), `packaging` "
            f"{_ms(phases['import packaging (requirements, specifiers)'])} ms (used only to read and check each "
            f"plugin's `aios-core` range in `aios_core.plugins._core_range` / `_compatibility_problem`), the rest of "
            f"`aios_core.cli` {_ms(phases['import aios_core.cli (rest)'])} ms; scanning {startup.distributions} "
            f"distributions' metadata costs {_ms(phases['discover(): scan installed metadata'])} ms. Without the "
            f"`packaging` import the ratio would be about "
            f"{(startup.medians[AIOS_LIST] - phases['import packaging (requirements, specifiers)']) / startup.medians[IMPORT_PLUGGY]:.2f}.")
    for result in training:
        checkpoint = _median(result.trainer.checkpoint)
        lines.append(
            f"- (b) {result.architecture.upper()}: trainer {_ms(_median(result.trainer.epoch))} ms/epoch vs plain "
            f"{_ms(_median(result.plain.epoch))} ms/epoch: ratio **{result.ratio:.3f}** (target <= "
            f"{TRAINER_TARGET_RATIO}{', over' if result.ratio > TRAINER_TARGET_RATIO else ', met'}); total fit time "
            f"{_ms(_median(result.trainer.total))} vs {_ms(_median(result.plain.total))} ms: "
            f"**{result.total_ratio:.3f}**. "
            f"Its checkpoint costs the training thread {_ms(checkpoint)} ms/epoch (snapshot, hand-off, waiting for "
            f"the previous write; without it: {result.ratio_without_checkpoint:.3f}); the write itself, "
            f"{_ms(_median(result.trainer.background_write))} ms, runs on the writer thread. Test accuracy "
            f"{statistics.mean(result.trainer.test_accuracy_last):.4f} (trainer, last epoch; returned best-val model "
            f"{statistics.mean(result.trainer.test_accuracy_returned):.4f}) vs "
            f"{statistics.mean(result.plain.test_accuracy_last):.4f} (plain).")
        if result.ablation:
            plain_runs = result.ablation["plain PyTorch loop"]
            ratios = {name: _median(runs.epoch) / _median(plain_runs.epoch) for name, runs in result.ablation.items()}
            totals = {name: _median(runs.total) / _median(plain_runs.total) for name, runs in result.ablation.items()}
            names = list(ABLATION)
            anatomy = list(result.checkpoint_anatomy.values())
            lines.append(
                f"  - Interleaved re-run (x plain, per epoch / total): as shipped {ratios[names[0]]:.3f} / "
                f"{totals[names[0]]:.3f}; the same checkpoint written on the training thread (before the writer "
                f"thread) {ratios[names[1]]:.3f} / {totals[names[1]]:.3f}; no checkpoint {ratios[names[2]]:.3f} / "
                f"{totals[names[2]]:.3f}; no checkpoint and `progress_updates: 0` {ratios[names[3]]:.3f} / "
                f"{totals[names[3]]:.3f}. The write (`last.pt`, {result.checkpoint_bytes / 1024:.0f} KiB) costs "
                f"{_ms(anatomy[0])} ms to serialize, {_ms(anatomy[1])} ms to a file, {_ms(anatomy[2])} ms atomically "
                f"with fsync. On the writer thread it still slows the training pass: "
                f"{_ms(_median(result.ablation[names[0]].train_pass))} ms as shipped against "
                f"{_ms(_median(result.ablation[names[2]].train_pass))} ms with no checkpoint (`torch.save` holds the "
                "GIL while it pickles, and the write and fsync take CPU time from the other core too).")
    by_name = {artifact["name"]: artifact for artifact in quantization.evaluation["artifacts"]}
    fp32, int8 = by_name["onnx"], by_name["int8"]
    ours = {name: {size: _median(values) * 1000 for size, values in per_size.items()}
            for name, per_size in quantization.latencies.items()}
    lines.append(
        f"- (c) int8 ({quantization.compress['chosen']}) vs fp32 ONNX: size {int8['size_bytes'] / fp32['size_bytes']:.3f}x, "
        f"test accuracy {int8['accuracy']:.4f} vs {fp32['accuracy']:.4f}; batch-1 p50 {int8['latency_ms']['1']['p50']:.4f} vs "
        f"{fp32['latency_ms']['1']['p50']:.4f} ms, batch-256 {int8['latency_ms']['256']['p50']:.3f} vs "
        f"{fp32['latency_ms']['256']['p50']:.3f} ms (run report); re-measured interleaved: batch-1 "
        f"{ours['onnx int8'][1]:.4f} vs {ours['onnx fp32'][1]:.4f} ms, batch-256 {ours['onnx int8'][256]:.3f} vs "
        f"{ours['onnx fp32'][256]:.3f} ms.")
    return lines


if __name__ == "__main__":
    sys.exit(main())
