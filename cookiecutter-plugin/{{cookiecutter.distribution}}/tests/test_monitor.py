{%- set P = cookiecutter.__class_prefix -%}
"""The {{ cookiecutter.plugin_name }} monitor: one line per event, in the order the run reports them."""

from __future__ import annotations

from pathlib import Path

from aios_core import ModelArtifact

from {{ cookiecutter.package }} import {{ P }}Monitor, {{ P }}MonitorParams


def events(path: Path) -> list[str]:
    return [line.split()[1] for line in path.read_text().splitlines()]


def test_each_event_is_one_line_in_order(run_with, tmp_path):
    monitor = {{ P }}Monitor()
    run = run_with(monitor)
    monitor.aios_on_run_start(run=run)
    monitor.aios_on_phase_start(run=run, phase="train")
    run.report_step(1, 1, 4, {"loss": 1.0})
    run.report_epoch(1, {"loss": 0.5, "val_accuracy": 0.75})
    (tmp_path / "model.bin").write_bytes(b"0")
    monitor.aios_on_artifact(run=run, artifact=ModelArtifact("native", tmp_path / "model.bin", "bin", "x"))
    monitor.aios_on_phase_end(run=run, phase="train", summary={"seconds": 1.5})
    monitor.aios_on_run_end(run=run, status="completed")
    assert events(tmp_path / "events.log") == [
        "run_start", "phase_start", "epoch_end", "artifact", "phase_end", "run_end"]
    assert "val_accuracy=0.75" in (tmp_path / "events.log").read_text()


def test_steps_are_written_only_when_asked(run_with, tmp_path):
    run = run_with({{ P }}Monitor({{ P }}MonitorParams(filename="progress.txt", steps=True)))
    run.report_step(1, 2, 4)
    assert events(tmp_path / "progress.txt") == ["step"]
    assert "step=2/4" in (tmp_path / "progress.txt").read_text()
