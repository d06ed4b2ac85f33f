"""The run directory: one folder per run, its layout, its state and its listing.

    runs/<YYYYmmdd-HHMMSS>-<name>/
        stack.lock.yaml   resolved stack + plugin versions (aios run --lock reproduces it)
        state.json        status and the outcome of each finished phase (for --resume)
        data.json         the dataset's summary and content hash
        metrics.jsonl     one JSON object per event (jsonl monitor)
        run.log           plugin and library logs
        checkpoints/      the trainer's per-epoch checkpoints
        artifacts/        native model, ONNX, int8 ONNX, ...
        report/           evaluation.json, training_curves.png, confusion_matrix.png
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aios_core.atomic import write_json, write_text


class RunDirectory:
    """The files of one run, read and written atomically."""

    LOCK = "stack.lock.yaml"
    STATE = "state.json"
    DATA = "data.json"
    METRICS = "metrics.jsonl"
    LOG = "run.log"

    def __init__(self, path: Path) -> None:
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
    def open(cls, path: str | Path) -> RunDirectory:
        """An existing run directory; ValueError if ``path`` is not one."""
        run = cls(Path(path))
        if not (run.path / cls.LOCK).is_file():
            raise ValueError(f"{path}: not a run directory (no {cls.LOCK}); see aios runs list")
        return run

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def report(self) -> Path:
        return self.path / "report"

    @property
    def lock_file(self) -> Path:
        return self.path / self.LOCK

    def write_lock(self, lock: dict[str, Any]) -> None:
        import yaml

        header = "# Written by aios run. Reproduce with: aios run --lock " + str(self.lock_file) + "\n"
        write_text(self.lock_file, header + yaml.safe_dump(lock, sort_keys=False))

    def read_state(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / self.STATE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"status": "created", "phases": {}}

    def write_state(self, state: dict[str, Any]) -> None:
        write_json(self.path / self.STATE, state)

    def write_data_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / self.DATA, summary)

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.path / self.METRICS
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line cut short by a killed process
                continue
        return records


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
