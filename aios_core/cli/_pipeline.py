"""``aios pipeline``: a stack as an orchestrator's pipeline, one step per phase (the ``orchestrator`` kind).

The orchestrator is the stack's ``orchestrator`` section, else ``--orchestrator NAME``, else
the only one installed. Its parameters are the section's (``--set orchestrator.image=...``),
validated like any component's before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aios_core.cli._app import (
    EXIT_FAILED,
    EXIT_USAGE,
    fail,
    index_option,
    load_stack_or_fail,
    main,
    read_index,
    runs_root,
    stack_argument,
    stack_options,
)

_orchestrator_option = click.option("--orchestrator", "orchestrator_name", metavar="NAME",
                                    help="The orchestrator when the stack has no orchestrator section "
                                         "(default: the only one installed).")

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _orchestrator_override(stack_file: str, overrides: tuple[str, ...], name: str | None) -> tuple[str, ...]:
    """``overrides`` after ``orchestrator.plugin=NAME`` when neither the stack nor an override names an orchestrator."""
    from aios_core.plugins import installed
    from aios_core.stack import StackError, read_stack_file

    try:
        contents = read_stack_file(stack_file)
    except StackError as error:
        fail([str(p) for p in error.problems], EXIT_USAGE)
    own = (contents.data.get("orchestrator") or {}).get("plugin")
    for override in overrides:
        key, _, value = override.partition("=")
        if key.strip() == "orchestrator.plugin":
            own = value.strip()
    if name and own and own != name:
        fail(f"{stack_file}: orchestrator.plugin is '{own}', but --orchestrator names '{name}'; give one of them",
             EXIT_USAGE)
    if own:
        return overrides
    if not name:
        usable = [entry.name for entry in installed("orchestrator") if entry.problem is None]
        if len(usable) != 1:
            found = f"installed: {', '.join(usable)}" if usable else "none is installed (aios plugins search orchestrator)"
            fail(f"{stack_file}: no orchestrator section; add one (orchestrator: {{plugin: NAME}}) or give "
                 f"--orchestrator NAME ({found})", EXIT_USAGE)
        name = usable[0]
    return (f"orchestrator.plugin={name}", *overrides)


def _load(stack: str | None, overrides: tuple[str, ...], orchestrator_name: str | None) -> Any:
    from aios_core.stack import DEFAULT_STACK

    stack_file = stack or str(DEFAULT_STACK)
    return load_stack_or_fail(stack_file, _orchestrator_override(stack_file, overrides, orchestrator_name))


def _hook(loaded: Any) -> Any:
    """The hooks of the stack's orchestrator alone."""
    from aios_core.plugins import new_plugin_manager, register

    pm = new_plugin_manager(builtins=False)
    register(pm, loaded.components["orchestrator"], "orchestrator")
    return pm.hook


@main.group()
def pipeline() -> None:
    """A stack as an orchestrator's pipeline (Kubeflow, ...): one step per phase."""


@pipeline.command("compile")
@stack_options(runs_dir=False)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write the pipeline.")
@_orchestrator_option
def compile_pipeline(stack: str | None, output: str, orchestrator_name: str | None, overrides: tuple[str, ...]) -> None:
    """Write STACK (default: the bundled digits stack) as the orchestrator's pipeline definition."""
    target = Path(output)
    if not target.parent.is_dir():
        fail(f"--output {output}: the directory {target.parent} does not exist", EXIT_USAGE)
    loaded = _load(stack, overrides, orchestrator_name)
    name = loaded.components["orchestrator"].name
    try:
        _hook(loaded).aios_compile_pipeline(stack=loaded, phases=loaded.phases, output=target)
    except Exception as error:  # the orchestrator's refusal, in one line
        from aios_core.errors import one_line

        fail(f"orchestrator '{name}': {one_line(error)}", EXIT_FAILED)
    click.echo(f"wrote {output} ({name} pipeline of {loaded.name}: {', '.join(loaded.phases)})")


@pipeline.command("run")
@stack_options(runs_dir=True)
@click.option("--local", is_flag=True, help="Run it on this machine with the orchestrator's local runner.")
@click.option("--host", metavar="URL", help="Submit it to the orchestrator's endpoint at URL.")
@_orchestrator_option
def run_pipeline(stack: str | None, local: bool, host: str | None, orchestrator_name: str | None,
                 overrides: tuple[str, ...], runs_dir: str | None) -> None:
    """Compile STACK and run it: --local on this machine (the final run directory lands in the runs directory),
    or --host URL on an endpoint."""
    if local == bool(host):
        fail("give either --local (run it on this machine) or --host URL (submit it to an endpoint)", EXIT_USAGE)
    loaded = _load(stack, overrides, orchestrator_name)
    name = loaded.components["orchestrator"].name
    try:
        result = _hook(loaded).aios_run_pipeline(stack=loaded, phases=loaded.phases,
                                                 runs_root=runs_root(runs_dir), target=host)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as error:  # a failed step (PipelineFailed: the orchestrator's own line), or the orchestrator's
        from aios_core.errors import PipelineFailed, one_line

        fail(str(error) if isinstance(error, PipelineFailed) else f"orchestrator '{name}': {one_line(error)}",
             EXIT_FAILED)
    if host:
        click.echo(f"submitted {name} run {result} to {host}")
    else:
        click.echo(f"{name} pipeline of {loaded.name} succeeded; run directory: {result} "
                   f"(aios runs show {Path(str(result)).name})")


def stack_dockerfile(stack_file: str, requirements: list[str], python: str = "3.11") -> str:
    """A Dockerfile whose image runs every step of STACK: Python and the stack's plugin set, its orchestrator's too."""
    quoted = " \\\n      ".join(f'"{line}"' for line in requirements)
    return f"""\
# The image of every step of the pipeline of {stack_file} (aios pipeline dockerfile {stack_file}):
# Python and the distributions its components come from (aios stack requirements), the orchestrator's
# too. Build and push it, then name it in the stack's orchestrator section (e.g. image: for kubeflow):
#   docker build -t IMAGE . && docker push IMAGE
# torch comes from its CPU index; for a stack that trains on GPUs build with
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126
FROM python:{python}-slim
ARG TORCH_INDEX={TORCH_CPU_INDEX}
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# git: the first-party distributions install from the repository's source
RUN apt-get update && apt-get install -y --no-install-recommends git \\
    && rm -rf /var/lib/apt/lists/*
RUN pip install --extra-index-url "$TORCH_INDEX" \\
      {quoted}
WORKDIR /tmp
"""


@pipeline.command("dockerfile")
@stack_argument
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@_orchestrator_option
@index_option
def pipeline_dockerfile(stack: str | None, output: str | None, orchestrator_name: str | None,
                        index_location: str | None) -> None:
    """The Dockerfile of the steps' image: Python and the stack's plugin set (aios stack requirements)."""
    import tempfile

    import yaml

    from aios_core.atomic import write_text
    from aios_core.installer import stack_requirements
    from aios_core.stack import StackError

    loaded = _load(stack, (), orchestrator_name)
    index = read_index(index_location)
    with tempfile.TemporaryDirectory() as tmp:  # the requirements of the stack with its orchestrator section
        resolved = Path(tmp) / "stack.yaml"
        resolved.write_text(yaml.safe_dump(loaded.resolved, sort_keys=False), encoding="utf-8")
        try:
            lines, notes = stack_requirements(str(resolved), index)
        except StackError as error:
            fail([str(p) for p in error.problems], EXIT_USAGE)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    text = stack_dockerfile(stack or "the default stack", lines)
    if output:
        write_text(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
