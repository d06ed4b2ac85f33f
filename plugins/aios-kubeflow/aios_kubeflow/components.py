"""The three step functions the pipeline's tasks run, as KFP lightweight Python components.

kfp copies each function's source into the task's command, so each imports what it needs
inside; they call ``aios_kubeflow.steps``, which the step's image (or the environment
kfp.local's subprocess runs in) must have installed. Deliberately no ``from __future__ import
annotations``: kfp reads the ``Input``/``Output`` annotations as objects.
"""

from kfp.dsl import Artifact, Input, Metrics, Output


def aios_first_step(lock: str, stack_digest: str, phases: str, run_dir: Output[Artifact]) -> str:
    """Start the run from the stack's lock file in run_dir and run the first phases (data); the data's hash."""
    from aios_kubeflow.steps import StepFailed, fail, first_step

    try:
        return first_step(lock, phases.split(","), run_dir.path)
    except StepFailed as error:
        fail(error)
        raise


def aios_step(previous: Input[Artifact], phases: str, stack_digest: str, data_hash: str,
              run_dir: Output[Artifact]) -> None:
    """Continue the run of the previous step's run directory with some phases, in run_dir."""
    from aios_kubeflow.steps import StepFailed, fail, next_step

    try:
        next_step(previous.path, phases.split(","), run_dir.path, data_hash)
    except StepFailed as error:
        fail(error)


def aios_evaluate_step(previous: Input[Artifact], phases: str, stack_digest: str, data_hash: str,
                       run_dir: Output[Artifact], metrics: Output[Metrics]) -> None:
    """Continue the run with the evaluate phase and log its figures as the task's metrics."""
    from aios_kubeflow.steps import StepFailed, evaluation_metrics, fail, next_step

    try:
        state = next_step(previous.path, phases.split(","), run_dir.path, data_hash)
    except StepFailed as error:
        fail(error)
    for name, value in evaluation_metrics(state).items():
        metrics.log_metric(name, value)
