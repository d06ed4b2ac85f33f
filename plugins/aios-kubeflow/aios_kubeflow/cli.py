"""``aios pipeline``: a stack as a Kubeflow pipeline (entry point ``aios.commands: pipeline``).

Importing this module loads click and the kernel's CLI helpers only; kfp is imported by
the commands that compile or run, so ``aios --help`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from aios_core.cli._app import EXIT_FAILED, EXIT_USAGE, fail, index_option, read_index, runs_dir_option, runs_root, set_option

_STACK_ARGUMENT = click.argument("stack", required=False, type=click.Path())


def _pipeline_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape the compiled pipeline, shared by ``compile`` and ``run``."""
    for option in reversed([
        set_option,
        click.option("--image", help="The steps' image (default: aios-STACKNAME:latest; see aios pipeline dockerfile)."),
        click.option("--cpu", help="CPU request of every step (default: the stack's threads), e.g. 1 or 500m."),
        click.option("--memory", default="2Gi", show_default=True, help="Memory request of every step."),
        click.option("--train-cpu", help="CPU request of tune and train (default: the trainer's: "
                                         "num_workers x cpus_per_worker, else threads)."),
        click.option("--train-memory", help="Memory request of tune and train (default: --memory)."),
        click.option("--accelerator", default="nvidia.com/gpu", show_default=True,
                     help="Accelerator type of tune and train when the trainer has use_gpu: true."),
        click.option("--retries", type=int, help="Retries of a failed step, 30 s apart and doubling (default: 1; "
                                                 "0 for run --local, where a retry meets the same machine again)."),
        click.option("--cache/--no-cache", default=True, show_default=True,
                     help="Let KFP reuse a step's outputs when the stack, the data and the inputs are the same."),
    ]):
        command = option(command)
    return command


def _load(stack: str | None, overrides: tuple[str, ...]) -> Any:
    from aios_core.stack import DEFAULT_STACK, StackError, load_stack

    try:
        return load_stack(stack or str(DEFAULT_STACK), overrides)
    except StackError as error:
        fail([str(p) for p in error.problems], EXIT_USAGE)


def _options(values: dict[str, Any], default_retries: int = 1) -> Any:
    from aios_kubeflow.options import PipelineOptions

    retries = default_retries if values["retries"] is None else values["retries"]
    options = PipelineOptions(image=values["image"], cpu=values["cpu"], memory=values["memory"],
                              train_cpu=values["train_cpu"], train_memory=values["train_memory"],
                              accelerator=values["accelerator"], retries=retries, caching=values["cache"])
    try:
        options.check()
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    return options


@click.group()
def pipeline() -> None:
    """A stack as a Kubeflow pipeline: one step per phase (aios-kubeflow)."""


@pipeline.command("compile")
@_STACK_ARGUMENT
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Where to write the pipeline (KFP v2 YAML).")
@_pipeline_options
def compile_command(stack: str | None, output: str, overrides: tuple[str, ...], **values: Any) -> None:
    """Write STACK (default: the bundled digits stack) as a KFP v2 pipeline: one task per phase."""
    options = _options(values)
    loaded = _load(stack, overrides)
    from aios_kubeflow.pipeline import compile_pipeline

    target = Path(output)
    if not target.parent.is_dir():
        fail(f"--output {output}: the directory {target.parent} does not exist", EXIT_USAGE)
    compile_pipeline(loaded, target, options)
    click.echo(f"wrote {output} (pipeline aios-{loaded.name})")


@pipeline.command("run")
@_STACK_ARGUMENT
@click.option("--local", is_flag=True, help="Run it here with KFP's local runner (kfp.local, subprocesses).")
@click.option("--host", metavar="URL", help="Submit it to the Kubeflow Pipelines API at URL.")
@click.option("--experiment", default="aios", show_default=True, help="The KFP experiment of a submitted run.")
@click.option("--pipeline-root", type=click.Path(file_okay=False),
              help="kfp.local's output directory (default: RUNS_DIR/kfp-local).")
@runs_dir_option
@_pipeline_options
def run_command(stack: str | None, local: bool, host: str | None, experiment: str, pipeline_root: str | None,
                runs_dir: str | None, overrides: tuple[str, ...], **values: Any) -> None:
    """Compile STACK and run it: --local with kfp.local, or --host URL on a Kubeflow Pipelines endpoint."""
    if local == bool(host):
        fail("give either --local (kfp.local on this machine) or --host URL (a Kubeflow Pipelines endpoint)",
             EXIT_USAGE)
    options = _options(values, default_retries=0 if local else 1)
    loaded = _load(stack, overrides)
    if host:
        from aios_kubeflow.local import submit

        try:
            run_id = submit(loaded, options, host, experiment)
        except Exception as error:  # the endpoint's refusal, in one line
            from aios_core.errors import one_line

            fail(f"--host {host}: {one_line(error)}", EXIT_FAILED)
        click.echo(f"submitted run {run_id} to {host} (experiment {experiment})")
        return
    from aios_kubeflow.local import PipelineFailed, run_local

    root = runs_root(runs_dir)
    try:
        run_dir = run_local(loaded, options, Path(pipeline_root) if pipeline_root else root / "kfp-local", root)
    except PipelineFailed as error:
        fail(str(error), EXIT_FAILED)
    click.echo(f"pipeline aios-{loaded.name} succeeded; run directory: {run_dir} (aios runs show {run_dir.name})")


@pipeline.command("dockerfile")
@_STACK_ARGUMENT
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.option("--image", help="The image name the comments use (default: aios-STACKNAME:latest).")
@index_option
def dockerfile_command(stack: str | None, output: str | None, image: str | None, index_location: str | None) -> None:
    """The Dockerfile of the steps' image: the stack's plugin set (aios stack requirements) and aios-kubeflow."""
    from aios_core.atomic import write_text
    from aios_core.stack import DEFAULT_STACK, StackError

    from aios_kubeflow.image import dockerfile
    from aios_kubeflow.options import default_image

    stack_file = stack or str(DEFAULT_STACK)
    index = read_index(index_location)
    try:
        name = _load(stack_file, ()).name
        text, notes = dockerfile(stack_file, index, image or default_image(name))
    except StackError as error:
        fail([str(p) for p in error.problems], EXIT_USAGE)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if output:
        write_text(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
