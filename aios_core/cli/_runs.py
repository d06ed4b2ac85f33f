"""``aios runs``: list and inspect run directories."""

from __future__ import annotations

import click

from aios_core.cli._app import EXIT_USAGE, fail, main, runs_dir_option, runs_root


@main.group()
def runs() -> None:
    """Run directories: list and inspect."""


@runs.command("list")
@runs_dir_option
def runs_list(runs_dir: str | None) -> None:
    """Every run under the runs directory, newest first."""
    from rich.markup import escape
    from rich.table import Table

    from aios_core.rundir import list_runs
    from aios_core.terminal import make_console

    root = runs_root(runs_dir)
    found = list_runs(root)
    if not found:
        click.echo(f"no runs under {root}")
        return
    table = Table("run", "status", "started", "test accuracy", "final model", "error")
    for run_dir in found:
        state = run_dir.read_state()
        evaluation = state.phase("evaluate") or {}
        accuracy = evaluation.get("test_accuracy")
        table.add_row(run_dir.name, state.status, state.started or "",
                      f"{accuracy:.4f}" if accuracy is not None else "", evaluation.get("final", ""),
                      escape(state.error or ""))
    make_console().print(table)


@runs.command("show")
@click.argument("run_ref", metavar="RUN")
@runs_dir_option
def runs_show(run_ref: str, runs_dir: str | None) -> None:
    """A run's stack, per-epoch metrics, artifacts (with sizes) and evaluation."""
    from rich.markup import escape
    from rich.syntax import Syntax

    from aios_core.cli._display import artifacts_table, evaluation_table, metrics_table, resources_table
    from aios_core.rundir import resolve_run
    from aios_core.terminal import make_console

    try:
        run_dir = resolve_run(runs_root(runs_dir), run_ref)
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    console = make_console()
    state = run_dir.read_state()
    console.print(f"[bold]{run_dir.name}[/]  status: {state.status}  started: {state.started}  "
                  f"finished: {state.finished or ''}  resumed: {max(state.resumed, 0)} time(s)")
    if state.error:
        console.print(f"error: {escape(state.error)}")
    console.print(Syntax(run_dir.lock_file.read_text(encoding="utf-8"), "yaml", theme="ansi_dark"))
    tune = state.phase("tune")
    if tune and tune.get("trials"):
        from aios_core.cli._display import trials_table

        console.print(trials_table(tune))
        console.print("* chosen trial" + ("; ^ on the Pareto front" if tune.get("pareto_front") else ""))
    epochs = [r for r in run_dir.read_metrics() if r.get("event") == "epoch" and r.get("phase") == "train"]
    if epochs:
        console.print(metrics_table(epochs))
    console.print(artifacts_table(run_dir))
    console.print(resources_table(state))
    evaluation = state.phase("evaluate")
    if evaluation:
        console.print(evaluation_table(evaluation))
        if evaluation.get("comparison"):
            console.print(f"comparison: {evaluation['comparison']}")
