"""AIOS benchmarks: CLI start-up, trainer overhead, fp32 against int8. Writes benchmarks/RESULTS.md.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/run.py

(a) ``aios plugins list`` (the real console script, in a subprocess) against
    ``python -c "import pluggy"``, interleaved, medians and their ratio (target <= 3).
(b) The ``torch`` trainer, called through ``pm.hook.aios_train`` with a real
    ``RunContext`` and the stack's parameters (the checkpoint policy's defaults), against
    a hand-written PyTorch loop: same data, model, seed, optimizer and batch size, one
    thread; whole-fit time (the final checkpoint is handed to its thread, as in a run), ratio per interleaved pair,
    median and spread (target <= 1.05). ``--only-trainer`` runs (b) alone and updates
    its part of RESULTS.md.
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
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import ExitStack, contextmanager  # noqa: E402
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
def machine(*distributions: str) -> dict[str, str]:
    """What the figures were measured on: CPU, cores, OS, Python, the versions of ``distributions``
    (default: torch, onnxruntime, numpy, pluggy), the commit and the load average at the start.

    The other benchmark scripts use it too (they put ``benchmarks/`` on ``sys.path``).
    """
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
        **{name: version(name) for name in distributions or ("torch", "onnxruntime", "numpy", "pluggy")},
        "commit": commit,
        "load average at start": _load_average(),
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
_TIMED_FUNCTIONS = ("_train_epoch", "evaluate", "_snapshot", "_save_checkpoint")
"""Functions of ``aios_torch._training`` timed inside every trainer run (it looks them up as module globals)."""
_TIMED_WRITER_METHODS = ("epoch_end", "wait", "close")
"""Methods of the kernel's ``aios_core.training.CheckpointWriter`` timed likewise."""
_CHECKPOINT_PARTS = ("_snapshot", "epoch_end", "wait")
"""The training thread's per-epoch checkpoint work: the snapshot, handing it to the writer (which starts a write
when the policy says so) and waiting for a write in flight before the next report."""


@dataclass
class VariantRuns:
    """One variant's runs: whole-fit times per repeat, and per-epoch parts (epoch 1 of each run excluded)."""

    total: list[float] = field(default_factory=list)
    """Wall time of each whole fit: for the trainer the ``aios_train`` call, which returns after its last write."""
    cpu: list[float] = field(default_factory=list)
    """CPU time of the process during each whole fit (all its threads): what time-sharing with other processes
    does not change."""
    load: list[float] = field(default_factory=list)
    """The 1-minute load average when each run started."""
    epoch: list[float] = field(default_factory=list)
    train_pass: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)
    checkpoint: list[float] = field(default_factory=list)
    final_write: list[float] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    final_weights: list[dict[str, Any]] = field(default_factory=list)
    test_accuracy_last: list[float] = field(default_factory=list)
    test_accuracy_returned: list[float] = field(default_factory=list)


def _spread(values: list[float], digits: int = 3) -> str:
    """Median, quartiles and range of ``values``, as text."""
    ordered = sorted(values)
    return (f"median {_median(ordered):.{digits}f}, quartiles {_percentile(ordered, 25):.{digits}f}–"
            f"{_percentile(ordered, 75):.{digits}f}, range {ordered[0]:.{digits}f}–{ordered[-1]:.{digits}f}")


@dataclass
class TrainingResult:
    architecture: str
    epochs: int
    repeats: int
    trainer: VariantRuns
    plain: VariantRuns
    parts: VariantRuns
    """Timed trainer runs, for the breakdown of its epochs."""
    parts_plain: VariantRuns
    """Plain-loop runs interleaved with those, for its side of the breakdown."""
    checkpoint_bytes: int
    max_weight_difference: float
    ablation: dict[str, VariantRuns] = field(default_factory=dict)
    ablation_epochs: int = 0
    ablation_repeats: int = 0
    profile: list[tuple[str, int, float]] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """Whole-fit time of the trainer over the plain loop's, per interleaved pair of runs."""
        return [ours / theirs for ours, theirs in zip(self.trainer.total, self.plain.total)]

    @property
    def ratio(self) -> float:
        """The target's figure: the median of the per-pair ratios of whole-fit time."""
        return _median(self.ratios)

    @property
    def ratio_of_medians(self) -> float:
        return _median(self.trainer.total) / _median(self.plain.total)

    @property
    def fast_ratio(self) -> float:
        """The 10th percentiles' ratio: the fits that the other processes on the machine disturbed least."""
        return _percentile(self.trainer.total, 10) / _percentile(self.plain.total, 10)

    @property
    def cpu_ratios(self) -> list[float]:
        return [ours / theirs for ours, theirs in zip(self.trainer.cpu, self.plain.cpu)]


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
    def run_trainer(self, architecture: str, epochs: int, into: VariantRuns | None,
                    overrides: dict[str, Any] | None = None, *, timed: bool = False) -> None:
        """The trainer through ``pm.hook.aios_train`` with the stack's parameters (so the checkpoint policy's
        defaults), early stopping off so that every run trains ``epochs``; ``overrides`` are more trainer
        parameters. The total is the whole call; the final checkpoint is then written on the writer's thread while a
        run saves the model (the runner waits for it before it records the phase), so it is not in the total.

        ``timed`` also splits the run into its parts (hook-call monitoring and wrapped functions: a few
        microseconds a call, so the totals compared with the plain loop come from runs without them).
        """
        import torch
        from aios_torch import _training

        from aios_core.training import CheckpointWriter, wait_for_checkpoints

        model = self.build(architecture)
        run = self.context("train")
        overrides = {"epochs": epochs, "early_stopping_patience": None, **(overrides or {})}
        targets = [(_training, name) for name in _TIMED_FUNCTIONS]
        targets += [(CheckpointWriter, name) for name in _TIMED_WRITER_METHODS]
        load = os.getloadavg()[0]
        with ExitStack() as timers:
            marks = timers.enter_context(_epoch_marks(self.pm)) if timed else []
            spans = timers.enter_context(_timed_calls(targets)) if timed else []
            started, cpu = time.perf_counter(), time.process_time()
            result = self.pm.hook.aios_train(model=model, dataset=self.dataset, run=run, overrides=overrides)
            total, cpu = time.perf_counter() - started, time.process_time() - cpu
            wait_for_checkpoints()  # the final checkpoint, which a run writes while it saves the model
        if into is None:
            return
        into.total.append(total)
        into.cpu.append(cpu)
        into.load.append(load)
        if timed:
            # Window i (epochs 2..n) runs from one epoch report to the next: the snapshot and hand-off of
            # epoch i-1's state, epoch i's training pass, validation and bookkeeping, and the wait for a
            # write in flight, if any (the trainer waits for it before it reports epoch i).
            windows = list(itertools.pairwise(marks))
            into.epoch += [end - begin for begin, end in windows]
            into.train_pass += [_busy_time(spans, ("_train_epoch",), begin, end) for begin, end in windows]
            into.validation += [_busy_time(spans, ("evaluate",), begin, end) for begin, end in windows]
            into.checkpoint += [_busy_time(spans, _CHECKPOINT_PARTS, begin, end) for begin, end in windows]
            into.final_write += [s.end - s.start for s in spans if s.name == "close" and s.training_thread]
            into.writes.append(sum(1 for s in spans if s.name == "_save_checkpoint"))
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
        load = os.getloadavg()[0]
        began, cpu = time.perf_counter(), time.process_time()  # as the trainer's: from its tensors to the end
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
        total, cpu = time.perf_counter() - began, time.process_time() - cpu
        if into is not None:
            into.total.append(total)
            into.cpu.append(cpu)
            into.load.append(load)
            into.epoch += epoch_times[1:]
            into.train_pass += train_times[1:]
            into.validation += val_times[1:]
            into.final_weights.append({name: value.detach().clone() for name, value in model.state_dict().items()})
            into.test_accuracy_last.append(self.test_accuracy(model))

    # ------------------------------------------------------------ where the trainer's time goes
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


ABLATION: dict[str, tuple[dict[str, Any], bool]] = {
    "trainer, the stack's parameters (checkpoint policy defaults)": ({}, True),
    "trainer, `checkpoint_interval_s: 0` (a write every epoch)": ({"checkpoint_interval_s": 0.0}, True),
    "trainer, `progress_updates: 0`": ({"progress_updates": 0}, True),
    "trainer, checkpoint written without fsync (diagnostic)": ({}, False),
}
"""Trainer variants of the interleaved re-run: trainer parameters, and whether the checkpoint is fsynced."""


@contextmanager
def _without_fsync(enabled: bool) -> Iterator[None]:
    """A diagnostic: the kernel's checkpoint writer renames its temporary file into place without fsync (this
    process only; ``aios_core.training`` looks ``atomic_path`` up as a module global)."""
    if not enabled:
        yield
        return
    from aios_core import training

    original = training.atomic_path

    @contextmanager
    def atomic_path_without_fsync(target: Any) -> Iterator[Path]:
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.no-fsync")
        try:
            yield tmp
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    training.atomic_path = atomic_path_without_fsync  # type: ignore[assignment]
    try:
        yield
    finally:
        training.atomic_path = original


def bench_training(architecture: str, epochs: int, repeats: int, scratch: Path, budget_s: float = 0.0,
                   ablation_repeats: int = 5, parts_repeats: int = 3) -> TrainingResult:
    """The trainer against the plain loop in pairs after one short warm-up of each, the order alternating (A B,
    B A, A B, ...): ``repeats`` pairs, and more until ``budget_s`` seconds have passed (a short fit gets many
    pairs); then the trainer variants of ``ABLATION`` and the plain loop, the order rotated each round."""
    bench = _TrainingBench(scratch)
    bench.run_trainer(architecture, 2, None)
    bench.run_plain(architecture, 2, None)
    trainer, plain = VariantRuns(), VariantRuns()
    began, repeat = time.perf_counter(), 0
    while repeat < repeats or time.perf_counter() - began < budget_s:
        repeat += 1
        if repeat % 2 == 1:
            bench.run_trainer(architecture, epochs, trainer)
            bench.run_plain(architecture, epochs, plain)
        else:
            bench.run_plain(architecture, epochs, plain)
            bench.run_trainer(architecture, epochs, trainer)
        _say(f"  {architecture} pair {repeat} (load {trainer.load[-1]:.1f}): trainer "
             f"{_ms(trainer.total[-1] / epochs)} ms/epoch, plain {_ms(plain.total[-1] / epochs)} ms/epoch, ratio "
             f"{trainer.total[-1] / plain.total[-1]:.3f}")
    difference = max(float((ours[name] - theirs[name]).abs().max())
                     for ours, theirs in zip(trainer.final_weights, plain.final_weights) for name in ours)
    checkpoint_bytes = bench.last_checkpoint.stat().st_size if bench.last_checkpoint else 0
    parts, parts_plain = VariantRuns(), VariantRuns()
    for _ in range(parts_repeats):
        bench.run_trainer(architecture, epochs, parts, timed=True)
        bench.run_plain(architecture, epochs, parts_plain)
    result = TrainingResult(architecture, epochs, repeat, trainer, plain, parts, parts_plain, checkpoint_bytes,
                            difference)
    if ablation_repeats:
        rounds = max(ablation_repeats, min(40, repeat // 15))  # a short fit gets more rounds for the same time
        _say(f"  {architecture}: the trainer with some parameters changed, {rounds} interleaved rounds ...")
        result.ablation_epochs, result.ablation_repeats = epochs, rounds
        result.ablation = _ablation(bench, architecture, epochs, rounds)
    if result.ratio > TRAINER_TARGET_RATIO:
        _say(f"  {architecture}: over target; profiling one more trainer run ...")
        result.profile = bench.profile(architecture, epochs)
    return result


def _ablation(bench: _TrainingBench, architecture: str, epochs: int, repeats: int) -> dict[str, VariantRuns]:
    """The trainer variants of ``ABLATION`` and the plain loop, all interleaved."""
    names = [*ABLATION, "plain PyTorch loop"]
    runs = {name: VariantRuns() for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)  # rotate the order, so that no variant always runs first or last
        for name in names[shift:] + names[:shift]:
            if name in ABLATION:
                overrides, fsync = ABLATION[name]
                with _without_fsync(not fsync):
                    bench.run_trainer(architecture, epochs, runs[name], overrides=overrides)
            else:
                bench.run_plain(architecture, epochs, runs[name])
    return runs


def _round_ratios(result: TrainingResult, name: str) -> list[float]:
    """An ablation variant's whole-fit time over the plain loop's in the same round, per round."""
    plain = result.ablation["plain PyTorch loop"].total
    return [ours / theirs for ours, theirs in zip(result.ablation[name].total, plain, strict=True)]


def _training_console(result: TrainingResult) -> list[str]:
    trainer, plain, parts, epochs = result.trainer, result.plain, result.parts, result.epochs
    parts_plain = result.parts_plain
    return [
        (f"  {result.architecture}: whole fit per epoch: trainer {_ms(_median(trainer.total) / epochs)} ms, plain "
         f"{_ms(_median(plain.total) / epochs)} ms; ratio per pair {_spread(result.ratios)} (target <= "
         f"{TRAINER_TARGET_RATIO}); 10th percentiles {result.fast_ratio:.3f}; CPU time per pair "
        f"{_spread(result.cpu_ratios)}"),
        (f"    trainer parts (median ms): training pass {_ms(_median(parts.train_pass))}, validation "
         f"{_ms(_median(parts.validation))}, checkpoint work per epoch {_ms(_median(parts.checkpoint))}, final "
         f"write {_ms(_median(parts.final_write))}, writes per run {sorted(set(parts.writes))}; plain: training "
         f"pass {_ms(_median(parts_plain.train_pass))}, validation {_ms(_median(parts_plain.validation))}; final "
         f"weights differ by <= {result.max_weight_difference:.1e}"),
    ]


def _pairs_table(result: TrainingResult, listed: int = 15) -> str:
    """The pairs one by one when there are few, else their distribution (percentiles over the pairs)."""
    trainer, plain, epochs = result.trainer, result.plain, result.epochs
    if result.repeats <= listed:
        rows = [[str(number), f"{load:.1f}", _ms(ours / epochs), _ms(theirs / epochs), f"{ours / theirs:.3f}",
                 f"{cpu_ratio:.3f}"]
                for number, (load, ours, theirs, cpu_ratio) in enumerate(
                    zip(trainer.load, trainer.total, plain.total, result.cpu_ratios, strict=True), 1)]
        return _table(["pair", "load (1 min)", "trainer ms/epoch", "plain ms/epoch", "ratio", "CPU time ratio"], rows)
    rows = [[f"{q}th", f"{_percentile(trainer.load, q):.1f}", _ms(_percentile(trainer.total, q) / epochs),
             _ms(_percentile(plain.total, q) / epochs), f"{_percentile(result.ratios, q):.3f}",
             f"{_percentile(result.cpu_ratios, q):.3f}"] for q in (10, 25, 50, 75, 90)]
    return _table([f"percentile of {result.repeats} pairs", "load (1 min)", "trainer ms/epoch", "plain ms/epoch",
                   "ratio", "CPU time ratio"], rows)


def _training_markdown(results: list[TrainingResult], stack_summary: str) -> str:
    text = [
        "## (b) `torch` trainer against a plain PyTorch loop",
        "",
        (f"Default stack ({stack_summary}); digits from the `sklearn` datastore (standardized, the stack's "
         "seeded split). Both variants build their model through the `torch` framework's `aios_build_model` hook "
         "(same seed, so the same initial weights), shuffle with a `torch.Generator` seeded alike, train with Adam "
         "(lr 1e-3), batch 64, cross-entropy, 1 thread, and validate every epoch. The trainer runs through "
         "`pm.hook.aios_train` with a real `RunContext` in a temporary run directory, **no monitors registered**, "
         "and the stack's trainer parameters, so the checkpoint policy's defaults (`checkpoint_interval_s: 10`: a "
         "snapshot every epoch, written when 10 s have passed since the last write, and always at the end) and "
         "`progress_updates: 4`; only early stopping is off, so that both variants train every epoch. The plain "
         "loop writes no checkpoint."),
        "",
        ("**The figure is whole-fit time**: the wall time of the `aios_train` call, which returns only after its "
         "final checkpoint is on disk (`torch.save` through `aios_core.atomic_path`: temp file, fsync, rename), "
         "against the plain loop's from making its tensors and optimizer to the end of its last epoch; divided by "
         "the epochs for the per-epoch columns. Nothing is left out: epoch 1, the set-up, every snapshot and the "
         "final write are in. The runs come in pairs (after one 2-epoch warm-up of each; as many pairs as fit in "
         "a time budget, so the short MLP fit gets more), trainer first in one "
         "pair and plain first in the next, and the ratio is taken per pair, so that a load spike hits both "
         "sides of a ratio alike; the target applies to the median of those ratios. The machine is shared: other "
         "engineers' test runs were going on (the load average at the start of each trainer run is listed). The "
         "process's CPU time (all its threads) over each fit is listed too: time-sharing with other processes "
         "does not stretch it, so its ratio is the steadier view of the work the trainer adds; the wall-time "
         "ratio also counts waiting, for the disk above all (`fsync`)."),
        "",
        ("The paired runs carry no instrumentation. The trainer's breakdown comes from a few more runs in "
         "which its epochs are split at its `aios_on_epoch_end` hook calls (observed with pluggy's "
         "`add_hookcall_monitoring`) and `_train_epoch`, `evaluate`, `_snapshot`, `_save_checkpoint` and the "
         "kernel's `CheckpointWriter.epoch_end`, `wait` and `close` are timed (a few microseconds a call); "
         "those columns are medians over epochs 2..n; the plain loop's come from its paired runs."),
        "",
    ]
    for result in results:
        trainer, plain, parts, epochs = result.trainer, result.plain, result.parts, result.epochs
        parts_plain = result.parts_plain
        verdict = "met" if result.ratio <= TRAINER_TARGET_RATIO else "**over**"
        same = ("identical" if result.max_weight_difference == 0
                else f"equal to within {result.max_weight_difference:.1e} (largest absolute difference)")
        rows = [
            ["torch trainer (`aios_train`)", _ms(_median(trainer.total) / epochs), _ms(_median(parts.train_pass)),
             _ms(_median(parts.validation)), _ms(_median(parts.checkpoint)), _ms(_median(parts.final_write)),
             _ms(_median(trainer.total)), f"{statistics.mean(trainer.test_accuracy_last):.4f}",
             f"{statistics.mean(trainer.test_accuracy_returned):.4f}"],
            ["plain PyTorch loop", _ms(_median(plain.total) / epochs), _ms(_median(parts_plain.train_pass)),
             _ms(_median(parts_plain.validation)), "-", "-", _ms(_median(plain.total)),
             f"{statistics.mean(plain.test_accuracy_last):.4f}", "-"],
        ]
        pairs = _pairs_table(result)
        text += [
            f"### {result.architecture.upper()} ({epochs} epochs, {result.repeats} interleaved pairs)",
            "",
            (f"**Trainer / plain, whole fit: {result.ratio:.3f}** (median of the pairs; target <= "
             f"{TRAINER_TARGET_RATIO}: {verdict}); {_spread(result.ratios)}. Ratio of the median totals: "
             f"{result.ratio_of_medians:.3f}; of the 10th percentiles (the least disturbed fits of each): "
             f"{result.fast_ratio:.3f}. CPU time, trainer / plain: {_spread(result.cpu_ratios)}."),
            "",
            pairs,
            "",
            _table(["variant", "whole fit ms/epoch", "training pass ms", "validation ms",
                    "checkpoint work ms/epoch (training thread)", "final write ms", f"total ms ({epochs} epochs)",
                    "test acc. (last epoch)", "test acc. (returned model)"], rows),
            "",
            (f"Checkpoint writes per trainer run: {', '.join(str(n) for n in sorted(set(parts.writes)))} (the "
             f"final one; a fit this short never reaches the 10 s interval). The per-epoch checkpoint work is the "
             f"snapshot (clones of the model and optimizer tensors, RNG states) and its hand-off; the final write "
             f"(`last.pt`, {result.checkpoint_bytes / 1024:.0f} KiB) is the trainer's `CheckpointWriter.close`, "
             f"inside the total. Training pass alone: "
             f"{_median(parts.train_pass) / _median(parts_plain.train_pass):.3f} x the plain loop's (timed runs, "
             f"each followed by a plain run); validation alone: "
             f"{_median(parts.validation) / _median(parts_plain.validation):.3f}. "
             f"Final weights of the two variants: {same}; the last-epoch accuracy loads the trainer's `last.pt`, the "
             "returned model holds its lowest-val_loss epoch."),
            "",
        ]
        if result.ablation:
            rows = [[name, _ms(_median(runs.total) / result.ablation_epochs), _spread(_round_ratios(result, name))]
                    for name, runs in result.ablation.items()]
            text += [
                (f"The trainer with some parameters changed, and the plain loop, all interleaved "
                 f"({result.ablation_epochs} epochs x {result.ablation_repeats} runs each, the order rotated each "
                 "round; the ratio is taken against the plain loop's run of the same round). The diagnostic variant "
                 "swaps, in this process only, the kernel writer's `atomic_path` for one that renames the temporary "
                 "file into place without `fsync`, to show what the disk costs:"),
                "",
                _table(["variant", "whole fit ms/epoch", "x plain, per round"], rows),
                "",
            ]
        if result.profile:
            text += [
                ("Over target, so cProfile of one more trainer run (training thread only): the trainer's own "
                 "functions and the checkpoint's parts (cumulative ms per epoch; profiling inflates Python-level "
                 "calls):"),
                "",
                _table(["function", "calls", "cumulative ms/epoch"],
                       [[f"`{name}`", calls, f"{seconds * 1000:.3f}"] for name, calls, seconds in result.profile]),
                "",
            ]
    return "\n".join(text)


def _training_findings(training: list[TrainingResult]) -> list[str]:
    lines = []
    for result in training:
        trainer, plain, parts, epochs = result.trainer, result.plain, result.parts, result.epochs
        line = (
            f"- (b) {result.architecture.upper()}: whole fit {_ms(_median(trainer.total) / epochs)} ms/epoch "
            f"(trainer, checkpoint policy defaults, final checkpoint handed to its thread) vs {_ms(_median(plain.total) / epochs)} "
            f"ms/epoch (plain loop): ratio **{result.ratio:.3f}** (median of {result.repeats} interleaved pairs, "
            f"quartiles {_percentile(result.ratios, 25):.3f}–{_percentile(result.ratios, 75):.3f}; target <= "
            f"{TRAINER_TARGET_RATIO}{', over' if result.ratio > TRAINER_TARGET_RATIO else ', met'}); least "
            f"disturbed fits (10th percentiles) {result.fast_ratio:.3f}; CPU time {_median(result.cpu_ratios):.3f}. "
            f"Checkpoint work "
            f"{_ms(_median(parts.checkpoint))} ms/epoch on the training thread, final write "
            f"{_ms(_median(parts.final_write))} ms. Test accuracy {statistics.mean(trainer.test_accuracy_last):.4f} "
            f"(trainer, last epoch; returned best-val model {statistics.mean(trainer.test_accuracy_returned):.4f}) vs "
            f"{statistics.mean(plain.test_accuracy_last):.4f} (plain).")
        if result.ablation:
            line += " Interleaved re-run (x plain, median of the rounds): " + "; ".join(
                f"{name.removeprefix('trainer, ')} {_median(_round_ratios(result, name)):.3f}"
                for name in result.ablation if name in ABLATION) + "."
        lines.append(line)
    return lines


def update_training_results(path: Path, info: dict[str, str], training: list[TrainingResult],
                            stack_summary: str) -> None:
    """Replace (b)'s section and summary lines in an existing results file, leaving (a) and (c) as they are."""
    from aios_core import write_text

    text = path.read_text(encoding="utf-8")
    begin = text.index("## (b) ")
    end = text.index("\n## (", begin + 1) + 1
    text = text[:begin] + _training_markdown(training, stack_summary) + "\n" + text[end:]
    lines = text.split("\n")
    start = next(number for number, line in enumerate(lines) if line.startswith("- (b) "))
    stop = next(number for number in range(start + 1, len(lines)) if not lines[number].startswith(("- (b) ", "  ")))
    note = (f"  - (b) re-measured alone (`benchmarks/run.py --only-trainer`) on {time.strftime('%Y-%m-%d %H:%M %Z')}, "
            f"commit {info['commit']}; load average at the end {_load_average()}.")
    lines[start:stop] = [*_training_findings(training), note]
    text = "\n".join(lines)
    write_text(path, text)


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
        f"{' (stopped early)' if result.train['stopped_early'] else ''}, best epoch {result.train['best_epoch']}. `auto` "
        "builds only int8 variants whose answers do not depend on the batch (dynamic int8 computes activation ranges "
        f"per call), so it built {', '.join(name for name in variants if name != 'fp32')} and kept **{chosen}** "
        "(validation accuracy and batch-1 p50: "
        + "; ".join(f"{name} {figures['val_accuracy']:.4f}, {figures['latency_ms_b1']:.4f} ms"
                    for name, figures in variants.items()) + ").",
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
    parser.add_argument("--repeats", type=int, default=9, help="Interleaved pairs of training runs in (b), at least.")
    parser.add_argument("--pair-budget-s", type=float, default=150.0,
                        help="More pairs in (b) until this many seconds have passed, per architecture.")
    parser.add_argument("--no-mlp", action="store_true", help="Measure only the default stack's CNN in (b).")
    parser.add_argument("--only-trainer", action="store_true",
                        help="Run (b) alone and replace only its section and summary lines in --output.")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where to write the Markdown results.")
    args = parser.parse_args(argv)
    from aios_core import write_text

    os.chdir(REPO)
    began, load_start = time.perf_counter(), _load_average()
    info = machine()
    _say("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))

    if not args.only_trainer:
        _say(f"(a) aios plugins list vs import pluggy, {args.cli_repeats} interleaved repeats ...")
        startup = bench_startup(args.cli_repeats)
        for name, median in startup.medians.items():
            _say(f"  {name:<28} median {_ms(median)} ms")
        _say(f"  ratio aios plugins list / import pluggy: {startup.ratio:.2f} (target <= {CLI_TARGET_RATIO:g})")

    with tempfile.TemporaryDirectory(prefix="aios-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        _say(f"(b) torch trainer vs plain loop, {args.epochs} epochs, interleaved pairs for at least "
             f"{args.pair_budget_s:.0f} s per model ...")
        architectures = ["cnn"] if args.no_mlp else ["cnn", "mlp"]
        training = [bench_training(arch, args.epochs, args.repeats, scratch / arch, args.pair_budget_s)
                    for arch in architectures]
        for result in training:
            for line in _training_console(result):
                _say(line)
        if args.only_trainer:
            update_training_results(args.output, info, training, load_stack_summary())
            _say(f"updated (b) in {args.output} ({time.perf_counter() - began:.0f} s)")
            return 0
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
    lines += _training_findings(training)
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
