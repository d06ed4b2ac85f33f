"""The built-in monitors: ``console`` (progress and summaries) and ``jsonl`` (metrics file)."""

from __future__ import annotations

import time
from typing import Any, Literal

from aios_core.atomic import json_text, write_text
from aios_core.components import Monitor, Params
from aios_core.context import RunContext
from aios_core.errors import one_line
from aios_core.hookspecs import hookimpl
from aios_core.records import ModelArtifact
from aios_core.rundir import RunDirectory
from aios_core.terminal import make_console


def _format_metrics(metrics: dict[str, Any]) -> str:
    shown = []
    for key in ("loss", "accuracy", "rmse", "val_loss", "val_accuracy", "val_rmse", "val_mae", "lr", "seconds"):
        if key in metrics:
            value = metrics[key]
            shown.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(shown)


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1024:.1f} KiB" if num_bytes < 1024 * 1024 else f"{num_bytes / 1024 / 1024:.2f} MiB"


class ConsoleMonitor(Monitor):
    """Shows the run on the console: a progress bar per epoch on a terminal, plain lines otherwise."""

    class Params(Params):
        progress: Literal["auto", "bar", "lines"] = "auto"

    def __init__(self, params: Params | None = None, name: str | None = None) -> None:
        super().__init__(params, name)
        self._progress: Any = None
        self._task: Any = None
        self._console: Any = None
        self._work: dict[str, Any] = {}  # report_progress: task -> its bar, or the last quarter printed

    @property
    def console(self) -> Any:
        if self._console is None:
            self._console = make_console()
        return self._console

    def _use_bar(self) -> bool:
        return self.params.progress == "bar" or (self.params.progress == "auto" and self.console.is_terminal)

    def _print(self, text: str) -> None:
        (self._progress.console if self._progress else self.console).print(text, soft_wrap=True)

    @hookimpl
    def aios_on_run_start(self, run: RunContext) -> None:
        verb = "resuming" if run.resume else "running"
        self._print(f"[bold]aios[/] {verb} stack [bold]{run.name}[/] (seed {run.seed}, {run.threads} thread"
                    f"{'s' if run.threads != 1 else ''}) in {run.dir}")

    @hookimpl
    def aios_on_phase_start(self, run: RunContext, phase: str) -> None:
        self._print(f"[cyan]▸ {phase}[/]")
        if phase in ("train", "tune") and self._use_bar():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=self.console)
            self._progress.start()

    def _epochs(self, run: RunContext) -> str:
        epochs = (run.stack.get("trainer") or {}).get("epochs")
        # A compressor that trains (compress-native) sets its own number of epochs: no total shown there.
        return f"/{epochs}" if epochs and run.phase in ("train", "tune") else ""

    @hookimpl
    def aios_on_step(self, run: RunContext, epoch: int, step: int, total_steps: int) -> None:
        if self._progress is None:
            return
        if self._task is None:
            self._task = self._progress.add_task(f"epoch {epoch}{self._epochs(run)}", total=total_steps)
        self._progress.update(self._task, completed=step, total=total_steps)

    @hookimpl
    def aios_on_progress(self, task: str, done: int, total: int | None, unit: str) -> None:
        """A bar per task on a terminal; otherwise a line at each quarter of the total, and when done."""
        if self._use_bar():
            if self._progress is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self._progress = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                                          TimeElapsedColumn(), console=self.console)
                self._progress.start()
            if task not in self._work:
                self._work[task] = self._progress.add_task(f"{task} ({unit})", total=total)
            self._progress.update(self._work[task], completed=done, total=total)
            return
        quarter = 4 * done // total if total else None
        if quarter is None or quarter > self._work.get(task, 0):
            self._work[task] = quarter or 0
            self._print(f"  {task}: {done:,}" + (f"/{total:,}" if total else "") + f" {unit}")

    @hookimpl
    def aios_on_epoch_end(self, run: RunContext, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
        line = f"epoch {epoch}{self._epochs(run)} {_format_metrics(metrics)}"
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task("", total=1)
            total = self._progress.tasks[self._task].total or 1
            self._progress.update(self._task, description=line, completed=total)
            self._task = None
        else:
            self._print(f"  {'trial ' if phase == 'tune' else ''}{line}")

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
        self._work = {}

    @hookimpl
    def aios_on_artifact(self, artifact: ModelArtifact) -> None:
        self._stop_progress()
        self._print(f"  wrote {artifact.name} ({artifact.format}, {_size(artifact.size_bytes)}): {artifact.path}")
        self._print_warnings(artifact.metrics.get("warnings"))

    def _print_warnings(self, warnings: Any) -> None:
        """A component's ``warnings`` (a list of strings in an artifact's metrics or a report), one line each."""
        from rich.markup import escape

        for warning in warnings if isinstance(warnings, list) else ():
            self._print(f"  [yellow]warning:[/] {escape(str(warning))}")

    @hookimpl
    def aios_on_phase_end(self, run: RunContext, phase: str, summary: dict[str, Any]) -> None:
        self._stop_progress()
        self._print_phase(phase, summary)
        if summary.get("resources"):
            from aios_core.resources import format_usage

            self._print(f"  [dim]resources: {format_usage(summary['resources'])}[/]")

    def _print_phase(self, phase: str, summary: dict[str, Any]) -> None:
        if phase == "data":
            sizes = summary["sizes"]
            self._print(f"  {summary['name']}: {sizes['train']}/{sizes['val']}/{sizes['test']} rows (train/val/test), "
                        f"{summary['num_features']} features, "
                        + (f"regression of {', '.join(summary.get('target_names') or ['a target'])}, "
                           if summary.get("task") == "regression" else f"{summary['num_classes']} classes, ")
                        + f"hash {summary['content_hash'][:12]}")
        elif phase == "train":
            final = summary.get("final", {})
            self._print(f"  best epoch {summary['best_epoch']}: {_format_metrics(final)}"
                        + (" (stopped early)" if summary.get("stopped_early") else ""))
        elif phase == "tune":
            self._print_tuning(summary)
        elif phase == "evaluate":
            self._print_evaluation(summary)
        elif phase == "deploy":
            self._print_deployment(summary)

    @hookimpl
    def aios_on_trial_end(self, trial: int, status: str, value: float | None) -> None:
        self._stop_progress()
        self._print(f"  trial {trial} {status}" + (f": {value:.4g}" if value is not None else ""))

    def _print_tuning(self, summary: dict[str, Any]) -> None:
        """The chosen parameters and, with several objectives, the Pareto front they were chosen from."""
        from rich.markup import escape

        objective = next(iter(summary.get("objectives") or {"val_loss": None}))
        chosen = summary.get("chosen_trial")
        for point in summary.get("pareto_front") or ():
            values = ", ".join(f"{name} {value:.4g}" for name, value in point["values"].items())
            self._print(f"  {'*' if point['number'] == chosen else ' '} front trial {point['number']}: {values}  "
                        f"{escape(str(point['params']))}")
        self._print(f"  best{'' if chosen is None else f' (trial {chosen})'} {escape(str(summary['best_params']))} "
                    f"({objective} {summary['best_value']:.4g})")

    def _print_deployment(self, report: dict[str, Any]) -> None:
        """The deployer's report: where it serves, and its smoke test (the ``aios_deploy`` contract)."""
        for key in ("url", "protocol", "bundle"):
            if report.get(key):
                self._print(f"  {key}: {report[key]}")
        smoke = report.get("smoke_test")
        if isinstance(smoke, dict):
            mark = "[green]passed[/]" if smoke.get("passed") else "[red]FAILED[/]"
            details = [f"{smoke[k]} {k.replace('_', ' ')}" for k in ("requests", "rows") if k in smoke]
            latency = smoke.get("single_row_latency_ms")
            if isinstance(latency, dict) and "p50" in latency:
                details.append(f"single-row p50 {latency['p50']:.2f} ms")
            served = smoke.get("server_latency_ms")
            if isinstance(served, dict) and "mean" in served:
                details.append(f"server-side mean {served['mean']:.2f} ms per single-row request")
            if "max_abs_diff" in smoke:
                details.append(f"max |diff| vs in-process {smoke['max_abs_diff']:.2g}")
            self._print(f"  smoke test {mark}" + (f": {', '.join(details)}" if details else ""))
            for problem in smoke.get("problems") or []:
                self._print(f"  [red]{problem}[/]")
            self._print_warnings(smoke.get("warnings"))

    def _print_evaluation(self, report: dict[str, Any]) -> None:
        from rich.table import Table

        table = Table(title="evaluation on the test split", title_justify="left")
        quality = [key for key in ("accuracy", "rmse", "mae", "r2") if key in report["artifacts"][0]]
        for column in ("model", "format", "size", *quality, *(f"latency b{b} (ms)" for b in report["artifacts"][0]["latency_ms"])):
            table.add_column(column, justify="left" if column in ("model", "format") else "right")
        for result in report["artifacts"]:
            table.add_row(result["name"], result["format"], _size(result["size_bytes"]),
                          *(f"{result[key]:.4f}" for key in quality),
                          *(f"{lat['p50']:.3f}" for lat in result["latency_ms"].values()))
        self._print("")
        (self._progress.console if self._progress else self.console).print(table)
        comparison = report.get("comparison")
        lines = [f"test {key[5:].upper() if key != 'test_accuracy' else 'accuracy'} {report[key]:.4f}"
                 for key in ("test_accuracy", "test_rmse", "test_r2") if key in report]
        lines[-1] += f" ({report['final']})"
        if comparison:
            b1 = next((r["latency_ms"].get("1") for r in report["artifacts"] if r["name"] == comparison["artifact"]), None)
            lines.append(f"{comparison['artifact']} size {comparison['size_ratio'] * 100:.1f}% of {comparison['baseline']}")
            if "accuracy_drop" in comparison:
                lines.append(f"accuracy drop {comparison['accuracy_drop'] * 100:.2f} points")
            else:
                lines.append(f"RMSE {comparison['metric_drop'] * 100:+.2f}%")
            if b1:
                lines.append(f"{comparison['artifact']} batch-1 latency {b1['p50']:.3f} ms "
                             f"({comparison['speedup'].get('1', 0):.2f}x {comparison['baseline']})")
        self._print("  " + "; ".join(lines))
        for gate in report["gates"]:
            mark = "[green]pass[/]" if gate["passed"] else "[red]FAIL[/]"
            self._print(f"  gate {gate['gate']}: {mark} ({gate['value']} vs {gate['limit']})")

    @hookimpl
    def aios_on_error(self, phase: str, error: BaseException) -> None:
        from rich.markup import escape

        self._stop_progress()
        self._print(f"[red]✗ {phase} failed:[/] {escape(one_line(error, phase=phase))}")

    @hookimpl
    def aios_on_run_end(self, run: RunContext, status: str) -> None:
        self._stop_progress()
        colour = {"completed": "green", "interrupted": "yellow"}.get(status, "red")
        self._print(f"[{colour}]{status}[/] {run.dir}")


class JsonlMonitor(Monitor):
    """Appends one JSON object per run event to ``metrics.jsonl`` in the run directory.

    On resume, events of epochs that are reported again replace the recorded ones, so the
    file ends as an uninterrupted run's would.
    """

    def __init__(self, params: Params | None = None, name: str | None = None) -> None:
        super().__init__(params, name)
        self._path: Any = None
        self._replay_checked = True

    def _write(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        with open(self._path, "a", encoding="utf-8") as handle:
            handle.write(json_text(record) + "\n")

    @hookimpl
    def aios_on_run_start(self, run: RunContext) -> None:
        self._path = RunDirectory(run.dir).metrics_file
        self._replay_checked = not run.resume
        self._write({"event": "run_start", "name": run.name, "seed": run.seed, "resume": run.resume})

    @hookimpl
    def aios_on_phase_start(self, phase: str) -> None:
        self._write({"event": "phase_start", "phase": phase})

    @hookimpl
    def aios_on_epoch_end(self, run: RunContext, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
        if phase == "train" and not self._replay_checked:
            self._replay_checked = True
            records = RunDirectory(run.dir).read_metrics()
            repeated = next((i for i, r in enumerate(records) if r.get("event") == "epoch"
                             and r.get("phase") == phase and r.get("epoch", 0) >= epoch), None)
            if repeated is not None:  # a resumed run reports this epoch again: keep one record
                kept = records[:repeated] + [r for r in records[repeated:] if r.get("event") != "epoch"]
                write_text(self._path, "".join(json_text(r) + "\n" for r in kept))
        self._write({"event": "epoch", "phase": phase, **metrics, "epoch": epoch})

    @hookimpl
    def aios_on_artifact(self, artifact: ModelArtifact) -> None:
        self._write({"event": "artifact", "name": artifact.name, "format": artifact.format,
                     "path": str(artifact.path), "size_bytes": artifact.size_bytes})

    @hookimpl
    def aios_on_phase_end(self, phase: str, summary: dict[str, Any]) -> None:
        record: dict[str, Any] = {"event": "phase_end", "phase": phase, "seconds": summary.get("seconds"),
                                  "resources": summary.get("resources")}
        if phase == "evaluate":
            record.update({key: summary[key] for key in ("test_accuracy", "test_rmse", "test_r2") if key in summary},
                          comparison=summary.get("comparison"))
        self._write(record)

    @hookimpl
    def aios_on_error(self, phase: str, error: BaseException) -> None:
        self._write({"event": "error", "phase": phase, "error": one_line(error, phase=phase)})

    @hookimpl
    def aios_on_run_end(self, status: str) -> None:
        self._write({"event": "run_end", "status": status})
