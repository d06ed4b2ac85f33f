"""AIOS kernel: the hook contract, component base classes, plugin loading and the stack runner.

Public names load on first use, so ``import aios_core`` stays cheap (the CLI's
``aios plugins list`` imports no plugin and no ML library).
"""

from __future__ import annotations

from aios_core._lazy import lazy_exports

__version__ = "0.1.0"
HOOK_API_VERSION = "1"
"""Bumped only by a breaking change to ``aios_core.hookspecs``; additions keep it."""

_EXPORTS = {
    "hookimpl": "aios_core.hookspecs",
    "hookspec": "aios_core.hookspecs",
    "Component": "aios_core.components",
    "Params": "aios_core.components",
    "ModelParams": "aios_core.components",
    "TrainingParams": "aios_core.components",
    "Framework": "aios_core.components",
    "Datastore": "aios_core.components",
    "Trainer": "aios_core.components",
    "Tuner": "aios_core.components",
    "Compressor": "aios_core.components",
    "Deployer": "aios_core.components",
    "Monitor": "aios_core.components",
    "Orchestrator": "aios_core.components",
    "KINDS": "aios_core.vocabulary",
    "TASKS": "aios_core.vocabulary",
    "Dataset": "aios_core.records",
    "DataDescription": "aios_core.records",
    "ModelArtifact": "aios_core.records",
    "Predictor": "aios_core.records",
    "TrainResult": "aios_core.records",
    "TuneResult": "aios_core.records",
    "hash_arrays": "aios_core.records",
    "array_header": "aios_core.records",
    "unscale_targets": "aios_core.records",
    "RunContext": "aios_core.context",
    "RunOptions": "aios_core.context",
    "ValidationContext": "aios_core.context",
    "TrialPruned": "aios_core.context",
    "RunDirectory": "aios_core.rundir",
    "RunState": "aios_core.rundir",
    "final_artifact": "aios_core.rundir",
    "EpochProgress": "aios_core.training",
    "CheckpointWriter": "aios_core.training",
    "TrainingDiverged": "aios_core.training",
    "check_resume_params": "aios_core.training",
    "report_steps": "aios_core.training",
    "wait_for_checkpoints": "aios_core.training",
    "onnx_session": "aios_core.inference",
    "metric_drop": "aios_core.evaluation",
    "regression_metrics": "aios_core.evaluation",
    "onnx_predictor": "aios_core.inference",
    "one_line": "aios_core.errors",
    "PipelineFailed": "aios_core.errors",
    "atomic_path": "aios_core.atomic",
    "write_json": "aios_core.atomic",
    "write_text": "aios_core.atomic",
    "drift_reference": "aios_core.drift",
    "bin_shares": "aios_core.drift",
    "psi": "aios_core.drift",
}

__all__ = ["__version__", "HOOK_API_VERSION", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
