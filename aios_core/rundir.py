"""The run record: one directory per run, its layout, its files and what they hold. Public API for plugins.

    runs/<YYYYmmdd-HHMMSS>-<name>/
        stack.lock.yaml   resolved stack + plugin versions (aios run --lock reproduces it)
        state.json        status and the summary of each finished phase (RunState; --resume reads it)
        data.json         the dataset's summary and content hash (DataSummary)
        metrics.jsonl     one JSON object per event (jsonl monitor)
        run.log           plugin and library logs, tracebacks
        checkpoints/      the trainer's checkpoints
        artifacts/        native model, ONNX, int8 ONNX, ...
        report/           evaluation.json, training_curves.png, confusion_matrix.png

The runner writes it; the CLI (``aios runs``), the monitors, deployers (``aios serve``)
and orchestrators read it, through ``RunDirectory`` and ``RunState`` only. Artifact
paths are recorded relative to the run directory, so a run directory can be moved.

The final model of a run is the newest artifact: a compressor's output after the
exported models after the native one (``final_artifact``); a reader that runs only
some formats (an ONNX server) takes the newest artifact of those formats.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from aios_core.atomic import write_json, write_text
from aios_core.records import ModelArtifact

__all__ = ["ArtifactsSummary", "DataSummary", "DeploySummary", "EvaluateSummary", "ResourceUsage", "RunDirectory",
           "RunState", "TrainSummary", "TuneSummary", "final_artifact", "list_runs", "resolve_run"]

STATUSES = ("created", "running", "completed", "failed", "interrupted", "partial")


# ---------------------------------------------------------------- phase summaries (state.json "phases")
class ResourceUsage(TypedDict):
    """Every phase's ``resources`` (``aios_core.resources``; null with ``AIOS_RESOURCE_USAGE=0``): wall and CPU
    seconds (process and descendants), peak resident bytes of the process during the phase (``peak_rss_scope``
    ``phase``; ``process``: since it started, where the OS cannot reset the mark), the sum of its live
    descendants' peaks, how many there were, and the peak CUDA bytes PyTorch allocated (null: no GPU)."""

    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    peak_rss_scope: str
    children_peak_rss_bytes: int
    children: int
    gpu_peak_bytes: int | None


class DataSummary(TypedDict, total=False):
    """``data``: what ``Dataset.summary()`` returns (also ``data.json``), plus ``seconds``."""

    name: str
    content_hash: str
    num_features: int
    num_classes: int
    class_names: list[str]
    image_shape: list[int] | None
    sizes: dict[str, int]
    preprocessing: dict[str, Any]
    seconds: float
    resources: ResourceUsage | None


class TuneSummary(TypedDict, total=False):
    """``tune``: the best parameters (``model.<field>``/``trainer.<field>``), their value and every trial."""

    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    seconds: float
    resources: ResourceUsage | None


class TrainSummary(TypedDict, total=False):
    """``train``: one dict of metrics per epoch, the epoch whose weights were kept, the native model."""

    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    final: dict[str, float]
    artifact: dict[str, Any]
    seconds: float
    resources: ResourceUsage | None


class ArtifactsSummary(TypedDict, total=False):
    """``compress-native``, ``export`` and ``compress``: the artifacts the phase wrote, in order (``ModelArtifact.to_json()``)."""

    artifacts: list[dict[str, Any]]
    seconds: float
    resources: ResourceUsage | None


class EvaluateSummary(TypedDict, total=False):
    """``evaluate``: ``report/evaluation.json``: each artifact's figures on the test split, the comparison of
    the final model with the first exported one, and the gates."""

    final: str
    test_accuracy: float
    test_rows: int
    artifacts: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    comparison: dict[str, Any] | None
    gates: list[dict[str, Any]]
    seconds: float
    resources: ResourceUsage | None


class DeploySummary(TypedDict, total=False):
    """``deploy``: the deployer's report; ``smoke_test.passed`` false fails the run."""

    url: str
    protocol: str
    bundle: str
    smoke_test: dict[str, Any]
    seconds: float
    resources: ResourceUsage | None


# ---------------------------------------------------------------- the state
def final_artifact(artifacts: Iterable[ModelArtifact], formats: Iterable[str] | None = None) -> ModelArtifact | None:
    """The newest of ``artifacts`` (given in the order they were written), or of those in ``formats``."""
    wanted = None if formats is None else set(formats)
    return next((a for a in reversed(list(artifacts)) if wanted is None or a.format in wanted), None)


@dataclass
class RunState:
    """``state.json``: the run's status, when it started and finished, and each finished phase's summary.

    ``status`` is ``created``, ``running``, ``completed``, ``failed``, ``interrupted`` or ``partial`` (the
    phases ``aios run --phases`` selected finished, later ones are left for ``--resume``);
    ``error`` says why a failed run failed (``phase: message``); ``resumed`` counts
    ``aios run --resume``. ``phases`` maps a phase name to its summary (the TypedDicts
    above), in the order the phases finished.
    """

    status: str = "created"
    started: str | None = None
    finished: str | None = None
    resumed: int = -1
    error: str | None = None
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        return cls(status=str(data.get("status", "created")), started=data.get("started"),
                   finished=data.get("finished"), resumed=int(data.get("resumed", -1)), error=data.get("error"),
                   phases=dict(data.get("phases") or {}))

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "started": self.started, "finished": self.finished, "resumed": self.resumed,
                "error": self.error, "phases": self.phases}

    def phase(self, name: str) -> dict[str, Any] | None:
        """The summary of phase ``name`` if it finished."""
        return self.phases.get(name)


class RunDirectory:
    """The files of one run, read and written atomically."""

    LOCK = "stack.lock.yaml"
    STATE = "state.json"
    DATA = "data.json"
    METRICS = "metrics.jsonl"
    LOG = "run.log"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, runs_root: Path, name: str) -> RunDirectory:
        """A new, empty run directory named for now and the stack."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        runs_root.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            path = runs_root / (f"{stamp}-{name}" if attempt == 1 else f"{stamp}-{name}-{attempt}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise FileExistsError(f"cannot create a run directory under {runs_root}")

    @classmethod
    def create_at(cls, path: str | Path) -> RunDirectory:
        """A new run directory at exactly ``path`` (an orchestrator's output); FileExistsError unless it is
        missing or empty."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if any(path.iterdir()):
            raise FileExistsError(f"{path}: not empty; a new run needs a new or empty directory "
                                  "(to continue the run there: aios run --resume)")
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        """An existing run directory; ValueError if ``path`` is not one."""
        run = cls(Path(path))
        if not (run.path / cls.LOCK).is_file():
            raise ValueError(f"{path}: not a run directory (no {cls.LOCK}); see aios runs list")
        return run

    # ------------------------------------------------------------ layout
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def artifacts_dir(self) -> Path:
        return self.path / "artifacts"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def lock_file(self) -> Path:
        return self.path / self.LOCK

    @property
    def log_file(self) -> Path:
        return self.path / self.LOG

    @property
    def metrics_file(self) -> Path:
        return self.path / self.METRICS

    # ------------------------------------------------------------ the lock file
    def write_lock(self, lock: dict[str, Any]) -> None:
        import yaml

        header = "# Written by aios run. Reproduce with: aios run --lock " + str(self.lock_file) + "\n"
        write_text(self.lock_file, header + yaml.safe_dump(lock, sort_keys=False))

    def read_lock(self) -> dict[str, Any]:
        """The resolved stack the run was started with (``name``, ``seed``, each section, ``lock``)."""
        import yaml

        return yaml.safe_load(self.lock_file.read_text(encoding="utf-8")) or {}

    # ------------------------------------------------------------ state and summaries
    def read_state(self) -> RunState:
        try:
            return RunState.from_json(json.loads((self.path / self.STATE).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return RunState()

    def write_state(self, state: RunState) -> None:
        write_json(self.path / self.STATE, state.to_json())

    def read_data_summary(self) -> DataSummary:
        return json.loads((self.path / self.DATA).read_text(encoding="utf-8"))

    def write_data_summary(self, summary: DataSummary) -> None:
        write_json(self.path / self.DATA, summary)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The events of ``metrics.jsonl``; a line cut short by a killed process is skipped."""
        if not self.metrics_file.exists():
            return []
        records = []
        for line in self.metrics_file.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    # ------------------------------------------------------------ artifacts
    def artifact_to_json(self, artifact: ModelArtifact) -> dict[str, Any]:
        """``artifact`` as recorded in ``state.json``: its path relative to the run directory when inside it."""
        data = artifact.to_json()
        path = Path(artifact.path)
        try:
            data["path"] = str(path.resolve().relative_to(self.path.resolve()))
        except ValueError:
            data["path"] = str(path.resolve())
        return data

    def artifact_from_json(self, data: dict[str, Any]) -> ModelArtifact:
        """A recorded artifact, its path resolved against the run directory."""
        artifact = ModelArtifact.from_json(data)
        artifact.path = self.path / artifact.path  # an absolute recorded path stays as it is
        return artifact

    def artifacts(self, state: RunState | None = None) -> list[ModelArtifact]:
        """Every model artifact the run wrote, in order: the native model, the exports, the compressors' outputs."""
        state = state or self.read_state()
        recorded = [summary["artifact"] for summary in [state.phase("train")] if summary and "artifact" in summary]
        for phase in ("compress-native", "export", "compress"):
            recorded += (state.phase(phase) or {}).get("artifacts", [])
        return [self.artifact_from_json(data) for data in recorded]

    def final_artifact(self, formats: Iterable[str] | None = None) -> ModelArtifact | None:
        """The run's final model (see the module docstring), or of ``formats``; None if there is none."""
        return final_artifact(self.artifacts(), formats)


def list_runs(runs_root: Path) -> list[RunDirectory]:
    """Every run directory under ``runs_root``, newest first."""
    if not runs_root.is_dir():
        return []
    runs = [RunDirectory(p) for p in runs_root.iterdir() if (p / RunDirectory.LOCK).is_file()]
    return sorted(runs, key=lambda r: r.name, reverse=True)


def resolve_run(runs_root: Path, ref: str) -> RunDirectory:
    """A run by path, by directory name, or by a unique prefix/suffix of its name."""
    if Path(ref).is_dir():
        return RunDirectory.open(ref)
    matches = [r for r in list_runs(runs_root) if r.name == ref or r.name.startswith(ref) or r.name.endswith(ref)]
    if len(matches) == 1 or (matches and matches[0].name == ref):
        return matches[0]
    if not matches:
        raise ValueError(f"{ref}: no such run under {runs_root}; see aios runs list")
    raise ValueError(f"{ref}: matches {len(matches)} runs ({', '.join(r.name for r in matches[:3])}, ...); be more precise")
