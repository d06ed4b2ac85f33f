"""A stack as a KFP v2 pipeline: one task per phase the stack has, the run directory passed between them.

The phases come from the kernel (``Stack.phases``, passed to the hook); each task runs
its phase with the kernel's runner (``aios_kubeflow.steps``). Importing this module
imports kfp: the CLI imports it only in the commands that compile or run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, dsl

from aios_kubeflow import components
from aios_kubeflow.options import default_image, step_resources

__all__ = ["build_pipeline", "compile_pipeline"]

def _lock_text(stack: Any) -> str:
    return yaml.safe_dump(stack.lock(), sort_keys=False)


def build_pipeline(stack: Any, phases: list[str], options: Any) -> Any:
    """The KFP pipeline function for ``stack`` (a loaded ``aios_core.stack.Stack``), one task per phase of ``phases``;
    ``options`` are the orchestrator's parameters (``KubeflowParams``)."""
    image = options.image or default_image(stack.name)
    lock = _lock_text(stack)
    digest = hashlib.sha256(lock.encode()).hexdigest()
    def component_of(phase: str) -> Any:
        """The phase's component, named for it (task ``aios-train`` runs component ``aios-train``)."""
        function = (components.aios_first_step if phase == phases[0] else
                    components.aios_evaluate_step if phase == "evaluate" else components.aios_step)
        component = dsl.component(function, base_image=image, install_kfp_package=False)
        component.component_spec.name = component.name = f"aios-{phase}"
        return component

    def configure(task: Any, phase: str) -> Any:
        resources = step_resources(stack, phase, options)
        task.set_display_name(phase)
        task.set_cpu_request(resources["cpu"])
        task.set_memory_request(resources["memory"])
        if resources["accelerator"]:
            task.set_accelerator_type(resources["accelerator"]["type"])
            task.set_accelerator_limit(resources["accelerator"]["count"])
        if options.retries:
            task.set_retry(num_retries=options.retries, backoff_duration="30s", backoff_factor=2.0)
        task.set_caching_options(options.caching)
        return task

    def pipeline():  # type: ignore[no-untyped-def]
        task = configure(component_of(phases[0])(lock=lock, stack_digest=digest, phases=phases[0]), phases[0])
        data_hash = task.outputs["Output"]
        for phase in phases[1:]:
            task = configure(component_of(phase)(previous=task.outputs["run_dir"], phases=phase, stack_digest=digest,
                                                 data_hash=data_hash), phase)
        return task.outputs["run_dir"]  # the pipeline's output: the finished run directory

    pipeline.__annotations__["return"] = dsl.Artifact  # an object, not the string this module's annotations are
    description = stack.settings.description or f"the AIOS stack {stack.name}"
    return dsl.pipeline(name=f"aios-{stack.name}", description=description)(pipeline)


def compile_pipeline(stack: Any, phases: list[str], output: Path, options: Any) -> Path:
    """Write ``stack``'s pipeline as KFP v2 YAML (IR) to ``output`` (any name: kfp's compiler wants ``.yaml``, so it
    writes beside and the text is moved), atomically."""
    import tempfile

    from aios_core.atomic import write_text

    pipeline = build_pipeline(stack, phases, options)
    with tempfile.TemporaryDirectory() as tmp:
        compiled = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(compiled))
        write_text(output, compiled.read_text(encoding="utf-8"))
    return output
