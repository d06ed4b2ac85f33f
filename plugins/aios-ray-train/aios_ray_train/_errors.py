"""The plugin's own errors, importable without ray or torch (``aios_ray_train`` re-exports them)."""

from __future__ import annotations


class ClusterError(RuntimeError):
    """The Ray cluster cannot run the training: unreachable, or too small for the workers asked for."""


class RayTrainFailed(RuntimeError):
    """Ray Train stopped with an error. The message is Ray's own last error line (``ArrowInvalid: ...``);
    the exception it chains from holds Ray's whole report, which the run writes to ``run.log``."""
