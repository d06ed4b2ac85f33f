"""Rich output of the commands that show one thing in detail: an index entry, a component's parameters, a run.

Imported by those commands only, so rich loads when something is shown, not at start-up.
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import TYPE_CHECKING, Any

from packaging.version import Version
from rich.markup import escape
from rich.table import Table

from aios_core import __version__
from aios_core.vocabulary import CORE_DISTRIBUTION

if TYPE_CHECKING:
    from aios_core.rundir import RunDirectory


def print_index_entry(console: Any, plugin: Any, index: Any) -> None:
    """What the index says about one plugin; its strings are the index's, so they are printed without markup."""
    status = plugin.status
    if plugin.status == "withdrawn":
        status += f": {plugin.withdrawn_reason or 'no reason given'}"
    elif plugin.deprecated_by:
        status += f": use {plugin.deprecated_by}"
    try:
        installed = metadata.version(plugin.distribution)
    except metadata.PackageNotFoundError:
        installed = "not installed"
    compatible = "incompatible with" if plugin.incompatibility() else "compatible with"
    console.print(f"[bold]{escape(plugin.distribution)}[/]  {escape(plugin.summary)}")
    lines = [("index", str(index.source)), ("status", status), ("tier", plugin.tier),
             (CORE_DISTRIBUTION,
              f"{plugin.aios_core or '(no range declared)'}: {compatible} the installed {__version__}"),
             ("components", plugin.kinds_text), ("repository", plugin.repository), ("license", plugin.license),
             ("maintainers", ", ".join(plugin.maintainers)), ("tags", ", ".join(plugin.tags)), ("installed", installed)]
    for key, value in lines:
        if value:
            console.print(f"  {key}: {escape(value)}")
    releases = sorted(plugin.releases, key=lambda r: Version(r.version), reverse=True)
    if releases:
        console.print("  releases:")
    for release in releases:
        review = "reviewed" if plugin.is_reviewed(release) else "unreviewed"
        console.print(f"    {escape(release.version)}  {review}  sha256:{release.sha256 or '(none)'}"
                      + (f"  {escape(release.wheel)}" if release.wheel else ""))
    newest = plugin.newest_release() or plugin.newest_release(reviewed_only=False)
    if plugin.status == "withdrawn" or plugin.incompatibility():
        return
    if plugin.from_source:
        if plugin.canonical != CORE_DISTRIBUTION:  # the kernel is installed with pip only
            console.print(f"  install: aios plugins install {escape(plugin.distribution)}  (no published release: "
                          f"from its source)")
        console.print(f'  with pip: pip install "{escape(plugin.source_requirement)}"')
    elif not plugin.by_name:
        console.print("  install: none; the index lists no published release of this first-party plugin and "
                      "records no source")
    else:
        pin = escape(f"{plugin.distribution}=={newest.version}" if newest else plugin.distribution)
        console.print(f"  install: aios plugins install {pin}")
        if newest and newest.sha256:
            console.print(f"  with pip: {pin} --hash=sha256:{newest.sha256}  "
                          f"(a requirements line for pip install --require-hashes -r FILE)")
        else:
            console.print(f"  with pip: pip install {pin}")


def parameter_table(params: Any) -> Table:
    """A component's ``Params`` model: each field's type, default and description."""
    table = Table("parameter", "type", "default", "description", title_justify="left")
    for field_name, info in params.model_fields.items():
        default = "required" if info.is_required() else info.get_default(call_default_factory=True)
        default = default if isinstance(default, str) else json.dumps(
            default.model_dump() if hasattr(default, "model_dump") else default, default=str)
        annotation = str(info.annotation).replace("typing.", "")
        annotation = getattr(info.annotation, "__name__", annotation) if "[" not in annotation else annotation
        table.add_row(field_name, annotation, default, info.description or "")
    return table


def metrics_table(epochs: list[dict[str, Any]]) -> Table:
    """One row per training epoch, with the metrics the first epoch recorded."""
    keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds") if k in epochs[0]]
    table = Table("epoch", *keys, title="metrics", title_justify="left")
    for record in epochs:
        table.add_row(str(record["epoch"]), *(f"{record[k]:.4g}" for k in keys))
    return table


def artifacts_table(run_dir: RunDirectory) -> Table:
    """The files of a run's artifacts and report directories, with their sizes."""
    table = Table("artifact", "format", "size", "path", title="artifacts", title_justify="left")
    for folder in (run_dir.artifacts_dir, run_dir.report_dir):
        for path in sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")):
            table.add_row(path.name, path.suffix.lstrip("."), f"{path.stat().st_size:,} B",
                          str(path.relative_to(run_dir.path)))
    return table


def evaluation_table(evaluation: dict[str, Any]) -> Table:
    """Each evaluated model's format, size, test accuracy and p50 latency per batch size."""
    table = Table("model", "format", "size", "accuracy", *(f"b{b} p50 ms" for b in evaluation["artifacts"][0]["latency_ms"]),
                  title="evaluation (test split)", title_justify="left")
    for result in evaluation["artifacts"]:
        table.add_row(result["name"], result["format"], f"{result['size_bytes']:,} B", f"{result['accuracy']:.4f}",
                      *(f"{lat['p50']:.3f}" for lat in result["latency_ms"].values()))
    return table


def resources_table(state: Any) -> Table:
    """Each finished phase's wall and CPU time, peak resident memory (process, children) and GPU memory."""
    mib = 1024 * 1024
    table = Table("phase", "wall s", "CPU s", "peak RSS MiB", "children MiB", "GPU MiB", title="resources",
                  title_justify="left")
    for phase, summary in state.phases.items():
        usage = summary.get("resources")
        if not usage:
            continue
        gpu = usage.get("gpu_peak_bytes")
        table.add_row(phase, f"{usage['wall_seconds']:.2f}", f"{usage['cpu_seconds']:.2f}",
                      f"{usage['peak_rss_bytes'] / mib:.0f}", f"{usage['children_peak_rss_bytes'] / mib:.0f}",
                      "-" if gpu is None else f"{gpu / mib:.0f}")
    return table


def trials_table(tune: dict[str, Any]) -> Table:
    """The tune phase's trials: state, objective values, epochs, parameters; the chosen one starred."""
    trials = tune.get("trials") or []
    objectives = list(tune.get("objectives") or next((t["values"] for t in trials if t.get("values")), {"value": 0}))
    names = sorted({name for trial in trials for name in trial.get("params", {})})
    table = Table("trial", "state", *objectives, "epochs", *names, title="trials", title_justify="left")
    for trial in trials:
        values = trial.get("values") or {}
        mark = " *" if trial.get("chosen") else " ^" if trial.get("pareto") else ""
        table.add_row(f"{trial.get('number')}{mark}", str(trial.get("state", "")),
                      *(f"{values[o]:.4g}" if o in values else "" for o in objectives), str(trial.get("epochs") or ""),
                      *(escape(json.dumps(trial.get("params", {}).get(n))) for n in names))
    return table
