"""The stack file's own fields: its top level, the component sections and ``evaluate``.

A component section holds ``plugin: NAME`` (``framework: NAME`` for ``model``) plus that
component's parameters, which only the component's ``Params`` can check
(``aios_core.stack.resolution``); here they pass through as extra keys.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from aios_core.components import Params

DEFAULT_MONITORS = [{"plugin": "console"}, {"plugin": "jsonl"}]
REQUIRED_SECTIONS = {"data": "plugin", "model": "framework"}
"""The sections a stack must have, each with the key that names its component."""
OPTIONAL_SECTIONS = ("trainer", "tuner", "compressors", "evaluate", "deployer", "monitors", "orchestrator")
"""Sections that may be left out (or left empty: only comments under ``trainer:``)."""
SEED_MAX = 2**32 - 1
"""The largest seed every library accepts (numpy's legacy seeding and TensorFlow refuse larger)."""
DEFAULT_STACK = Path(__file__).parent.parent / "stacks" / "digits-torch.yaml"


class ComponentSection(BaseModel):
    """``plugin: NAME`` plus the component's own parameters."""

    model_config = ConfigDict(extra="allow")
    plugin: str = Field(min_length=1)


class ModelSection(BaseModel):
    """``framework: NAME`` plus the framework's model parameters."""

    model_config = ConfigDict(extra="allow")
    framework: str = Field(min_length=1)


class TrainerSection(BaseModel):
    """The trainer; ``plugin`` defaults to the framework's own trainer of the same name."""

    model_config = ConfigDict(extra="allow")
    plugin: str | None = Field(None, min_length=1)


class EvaluateSettings(Params):
    """How the evaluate phase measures every model artifact, and the gates a run must pass."""

    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1, 256], min_length=1)
    latency_runs: PositiveInt = 100
    min_accuracy: float | None = Field(None, ge=0, le=1)
    max_accuracy_drop: float | None = Field(None, ge=0, le=1)
    max_size_ratio: float | None = Field(None, gt=0)
    max_rmse: float | None = Field(None, gt=0)
    """Regression: the final model's test RMSE, in the target's units, must not exceed this."""
    min_r2: float | None = Field(None, le=1)
    """Regression: the final model's test R^2 must reach this."""
    max_metric_drop: float | None = Field(None, ge=0)
    """The final model against the first export: accuracy drop (classification) or relative RMSE increase
    (regression, 0.05 = 5 % higher) must not exceed this."""


class StackFile(Params):
    """The top level of a stack file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)
    description: str = ""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    threads: PositiveInt = 1
    data: ComponentSection
    model: ModelSection
    trainer: TrainerSection = Field(default_factory=TrainerSection)
    tuner: ComponentSection | None = None
    compressors: list[ComponentSection] = Field(default_factory=list)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    deployer: ComponentSection | None = None
    monitors: list[ComponentSection] = Field(default_factory=lambda: [ComponentSection(**m) for m in DEFAULT_MONITORS])
    orchestrator: ComponentSection | None = None
