{%- set kinds = cookiecutter.__kinds.split(',') -%}
{%- macro import_line(module, names) -%}
{%- set line = 'from ' ~ module ~ ' import ' ~ names | join(', ') -%}
{%- if line | length <= 120 %}{{ line }}{% else %}from {{ module }} import (
{%- for name in names %}
    {{ name }},
{%- endfor %}
){% endif -%}
{%- endmacro -%}
{%- set P = cookiecutter.__class_prefix -%}
{%- set pkg = cookiecutter.package -%}
{%- set base_names = {'framework': 'Framework', 'trainer': 'Trainer', 'datastore': 'Datastore', 'tuner': 'Tuner', 'compressor': 'Compressor', 'deployer': 'Deployer', 'monitor': 'Monitor', 'orchestrator': 'Orchestrator'} -%}
{%- set runtime = [] -%}
{%- for kind in kinds %}{% set _ = runtime.append(base_names[kind]) %}{% endfor -%}
{%- if 'framework' in kinds %}{% set _ = runtime.append('ModelArtifact') %}{% set _ = runtime.append('ModelParams') %}{% endif -%}
{%- if 'trainer' in kinds %}{% set _ = runtime.append('TrainingParams') %}{% endif -%}
{%- if kinds | select('in', ['datastore', 'tuner', 'compressor', 'deployer', 'monitor', 'orchestrator']) | list %}{% set _ = runtime.append('Params') %}{% endif -%}
{%- set typing_only = ['RunContext'] -%}
{%- if kinds | select('in', ['framework', 'trainer', 'datastore', 'compressor', 'deployer']) | list %}{% set _ = typing_only.append('Dataset') %}{% endif -%}
{%- if 'framework' not in kinds and kinds | select('in', ['compressor', 'deployer', 'monitor']) | list %}{% set _ = typing_only.append('ModelArtifact') %}{% endif -%}
{%- if 'framework' in kinds %}{% set _ = typing_only.append('Predictor') %}{% endif -%}
{%- if 'trainer' in kinds %}{% set _ = typing_only.append('TrainResult') %}{% endif -%}
{%- if 'tuner' in kinds %}{% set _ = typing_only.append('TuneResult') %}{% endif -%}
{%- set pydantic_names = ['Field'] -%}
{%- if kinds | select('in', ['framework', 'datastore', 'tuner', 'deployer']) | list or ('compressor' in kinds and 'framework' not in kinds) %}{% set _ = pydantic_names.append('PositiveInt') %}{% endif -%}
{%- if 'tuner' in kinds %}{% set _ = pydantic_names.append('field_validator') %}{% endif -%}
{%- set typing_names = ['TYPE_CHECKING'] -%}
{%- if kinds | select('in', ['framework', 'trainer', 'tuner', 'deployer', 'monitor', 'orchestrator']) | list %}{% set _ = typing_names.append('Any') %}{% endif -%}
{%- if 'framework' in kinds or 'trainer' in kinds %}{% set _ = typing_names.append('Literal') %}{% endif -%}
"""{{ cookiecutter.summary.rstrip('.') }}.

This module is what the entry points name, so it stays light: it defines the components
and their parameters and imports only ``aios_core`` and pydantic. The hooks import the
modules that do the work (the ``_*.py`` files beside this one) when they run, so
``aios plugins list`` and ``aios validate`` never pay for them.
"""

from __future__ import annotations

{% if 'orchestrator' in kinds -%}
import sys
{% endif -%}
{% if 'framework' in kinds or 'datastore' in kinds or 'orchestrator' in kinds -%}
from pathlib import Path
{% endif -%}
from typing import {{ typing_names | join(', ') }}

{{ import_line('aios_core', (runtime | sort) + ['hookimpl']) }}
from pydantic import {{ pydantic_names | join(', ') }}

if TYPE_CHECKING:
{%- if 'tuner' in kinds %}
    from collections.abc import Callable
{% endif %}
    from aios_core import {{ (typing_only | sort) | join(', ') }}

__version__ = "0.1.0"
{%- set exported = [] %}{% for kind in kinds %}{% set _ = exported.append('"' ~ P ~ (kind | capitalize) ~ '"') %}{% endfor %}{% set _ = exported.append('"__version__"') %}
{%- if ('__all__ = [' ~ exported | join(', ') ~ ']') | length <= 120 %}
__all__ = [{{ exported | join(', ') }}]
{%- else %}
__all__ = [
{%- for name in exported %}
    {{ name }},
{%- endfor %}
]
{%- endif %}

NAME = "{{ cookiecutter.plugin_name }}"
"""The name stacks use for every component of this plugin (``plugin: {{ cookiecutter.plugin_name }}``)."""
{%- if 'framework' in kinds %}
NATIVE_FORMAT = "{{ cookiecutter.__native_format }}"
"""The framework's own file format: NumPy arrays in an ``.npz`` file, loaded without pickle."""
{%- endif %}
{%- if 'framework' in kinds %}


# ---------------------------------------------------------------- framework
class {{ P }}ModelParams(ModelParams):
    """Parameters of the ``{{ cookiecutter.plugin_name }}`` framework (a stack's ``model:`` section).

    AIOS's shared ``ModelParams``, so a stack's model values keep their meaning when it
    changes framework. A field this NumPy MLP does not implement accepts only the value
    it implements (``architecture: mlp``, ``dropout: 0``), so a stack asking for more is
    told so; widen the field when you implement it.
    """

    architecture: Literal["mlp"] = Field("mlp", description="mlp: the only architecture of this framework.")
    hidden_units: list[PositiveInt] = Field(
        default_factory=lambda: [64], description="Units of each hidden layer; [] gives softmax regression.")
    activation: Literal["relu", "tanh"] = Field("relu", description="Activation after each hidden layer.")
    dropout: float = Field(0.0, ge=0.0, le=0.0, description="Dropout before the output layer: not implemented, 0.")


class {{ P }}Framework(Framework):
    """NumPy multilayer perceptrons: built for the dataset, saved as ``.npz`` (no pickle), loaded and run."""

    Params = {{ P }}ModelParams
    native_format = NATIVE_FORMAT
    tasks = ("classification",)  # add "regression" once it handles numeric targets (docs/regression.md)
    export_formats = ()
    params: {{ P }}ModelParams

    def __init__(self, params: {{ P }}ModelParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_build_model(self, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> Any:
        from {{ pkg }} import _model

        params = {{ P }}ModelParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _model.build(dataset.num_features, dataset.num_classes, params.hidden_units, params.activation,
                            seed=run.seed)

    @hookimpl
    def aios_save_model(self, model: Any, path: Path) -> ModelArtifact:
        from {{ pkg }} import _model

        _model.save(model, Path(path))
        return ModelArtifact(name="native", path=Path(path), format=self.native_format, producer=self.name)

    @hookimpl
    def aios_load_model(self, artifact: ModelArtifact) -> Any:
        if artifact.format != self.native_format:
            return None
        from {{ pkg }} import _model

        return _model.load(Path(artifact.path))

    @hookimpl
    def aios_load_predictor(self, artifact: ModelArtifact, threads: int) -> Predictor | None:
        if artifact.format != self.native_format:
            return None
        from {{ pkg }} import _model

        return _model.load(Path(artifact.path)).predict_proba
{%- endif %}
{%- if 'trainer' in kinds %}


# ---------------------------------------------------------------- trainer
class {{ P }}TrainerParams(TrainingParams):
    """Parameters of the ``{{ cookiecutter.plugin_name }}`` trainer (a stack's ``trainer:`` section).

    AIOS's shared ``TrainingParams``, so a stack's trainer values keep their meaning when
    it changes trainer. This trainer implements them all (learning-rate schedules, early
    stopping, the checkpoint policy ``checkpoint_interval_s``) but one optimizer:
    ``optimizer`` accepts only ``sgd``, so a stack asking for adam is told so; widen the
    field when you implement it.
    """

    batch_size: int = Field(32, ge=1, description="Rows per gradient step.")
    optimizer: Literal["sgd"] = Field("sgd", description="sgd with momentum: the only optimizer of this trainer.")
    learning_rate: float = Field(0.05, gt=0.0, description="Step size of gradient descent (the first epoch's, with "
                                                           "lr_schedule step or cosine).")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="Momentum of gradient descent (0: plain SGD).")
    weight_decay: float = Field(0.0, ge=0.0, description="L2 penalty on the weights, added to their gradient.")


class {{ P }}Trainer(Trainer):
    """Trains ``{{ cookiecutter.plugin_name }}`` models with mini-batch gradient descent on cross-entropy.

    Reports every epoch, writes checkpoints under ``run.checkpoint_dir`` as the checkpoint
    policy says (``checkpoint_interval_s``) and, with ``run.resume``, continues from the
    newest; the result equals an uninterrupted run. The returned model holds the weights
    of the epoch with the lowest ``val_loss``.
    """

    Params = {{ P }}TrainerParams
    frameworks = (NAME,)
    tasks = ("classification",)  # add "regression" once it handles numeric targets (docs/regression.md)
    params: {{ P }}TrainerParams

    def __init__(self, params: {{ P }}TrainerParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_train(self, model: Any, dataset: Dataset, run: RunContext, overrides: dict[str, Any]) -> TrainResult:
        from {{ pkg }} import _training

        params = {{ P }}TrainerParams.model_validate({**self.params.model_dump(), **(overrides or {})})
        return _training.train(model, dataset, run, params)
{%- endif %}
{%- if 'datastore' in kinds %}


# ---------------------------------------------------------------- datastore
class {{ P }}DatastoreParams(Params):
    """Parameters of the ``{{ cookiecutter.plugin_name }}`` datastore (a stack's ``data:`` section)."""

    csv: Path | None = Field(None, description="A CSV file with a header row, numeric feature columns and a label "
                                               "column; when not given, gaussian blobs are generated.")
    target: str = Field("target", min_length=1, description="The label column of the CSV file.")
    samples: int = Field(600, ge=30, description="Rows of generated blobs.")
    features: PositiveInt = Field(8, description="Features of generated blobs.")
    classes: int = Field(3, ge=2, le=100, description="Classes (blobs) of generated data.")
    spread: float = Field(1.0, gt=0.0, description="Standard deviation of each blob around its centre.")
    blob_seed: int = Field(0, ge=0, description="Seed of the generated blobs (the split uses the run's seed).")
    validation: float = Field(0.15, gt=0.0, lt=0.5, description="Fraction of each class held out for validation.")
    test: float = Field(0.15, gt=0.0, lt=0.5, description="Fraction of each class held out for the test.")
    standardize: bool = Field(True, description="Scale features to zero mean, unit variance (train statistics).")


class {{ P }}Datastore(Datastore):
    """Gaussian blobs or a numeric CSV file, split per class with the run's seed and standardized."""

    Params = {{ P }}DatastoreParams
    params: {{ P }}DatastoreParams
    tasks = ("classification",)  # add "regression" once it handles numeric targets (docs/regression.md)

    def __init__(self, params: {{ P }}DatastoreParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_load_dataset(self, run: RunContext) -> Dataset:
        from {{ pkg }} import _data

        return _data.load(self.params, seed=run.seed)
{%- endif %}
{%- if 'tuner' in kinds %}


# ---------------------------------------------------------------- tuner
class {{ P }}TunerParams(Params):
    """Parameters of the ``{{ cookiecutter.plugin_name }}`` tuner (a stack's ``tuner:`` section)."""

    space: dict[str, list[Any]] = Field(
        default_factory=dict, description="Choices per parameter, keys model.<field> or trainer.<field>, e.g. "
                                          "{'trainer.learning_rate': [0.01, 0.1]}; empty: one trial as the stack is.")
    trials: PositiveInt = Field(4, description="Combinations to try (all of them if there are fewer).")

    @field_validator("space")
    @classmethod
    def _keys_and_choices(cls, space: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, choices in space.items():
            if not key.startswith(("model.", "trainer.")) or key in ("model.", "trainer."):
                raise ValueError(f"keys like model.<field> or trainer.<field> (found {key!r})")
            if not choices:
                raise ValueError(f"at least one choice for {key!r}")
        return space


class {{ P }}Tuner(Tuner):
    """Random search: tries distinct combinations of the ``space`` choices, in an order set by the run's seed."""

    Params = {{ P }}TunerParams
    tasks = ("classification",)  # add "regression" once it handles numeric targets (docs/regression.md)
    params: {{ P }}TunerParams

    def __init__(self, params: {{ P }}TunerParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_tune(self, objective: Callable[[dict[str, Any]], float], run: RunContext) -> TuneResult:
        from {{ pkg }} import _search

        return _search.random_search(objective, self.params.space, self.params.trials, seed=run.seed, log=run.log)
{%- endif %}
{%- if 'compressor' in kinds %}


# ---------------------------------------------------------------- compressor
class {{ P }}CompressorParams(Params):
    """Parameters of the ``{{ cookiecutter.plugin_name }}`` compressor (an item of a stack's ``compressors:``)."""
{%- if 'framework' not in kinds %}

    min_elements: PositiveInt = Field(16, description="Weight tensors smaller than this stay float32.")
{%- endif %}
    max_accuracy_drop: float = Field(
        0.02, ge=0.0, le=1.0, description="Largest validation-accuracy loss accepted (0.02 = 2 points); more fails.")


class {{ P }}Compressor(Compressor):
{%- if 'framework' in kinds %}
    """Stores a ``{{ cookiecutter.plugin_name }}`` model's weights as float16: half the file, nearly the same answers."""

    input_formats = (NATIVE_FORMAT,)
    output_format = NATIVE_FORMAT
{%- else %}
    """Stores an ONNX model's float weights as float16 (cast back to float32 when run): about half the file."""

    input_formats = ("onnx",)
    output_format = "onnx"
{%- endif %}
    Params = {{ P }}CompressorParams
    params: {{ P }}CompressorParams
    tasks = ("classification",)  # add "regression" once it handles numeric targets (docs/regression.md)

    def __init__(self, params: {{ P }}CompressorParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_compress(self, artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> ModelArtifact:
        if artifact.format not in self.input_formats:
            raise ValueError(f"compressor {self.name!r} takes {', '.join(self.input_formats)} models, but artifact "
                             f"{artifact.name!r} ({artifact.path}) has format {artifact.format!r}")
        from {{ pkg }} import _compress

        return _compress.compress(artifact, dataset, run, self.params, producer=self.name)
{%- endif %}
{%- if 'deployer' in kinds %}


# ---------------------------------------------------------------- deployer
class {{ P }}DeployerParams(Params):
    """Parameters of the ``{{ cookiecutter.plugin_name }}`` deployer (a stack's ``deployer:`` section)."""

    host: str = Field("127.0.0.1", min_length=1, description="Address the HTTP server listens on.")
    port: int = Field(0, ge=0, le=65535, description="Port of the HTTP server; 0 picks a free one.")
    smoke_rows: PositiveInt = Field(32, description="Test rows sent to the server and checked after deploying.")
    tolerance: float = Field(1e-5, ge=0.0, description="Largest difference from the run's own predictions.")


class {{ P }}Deployer(Deployer):
    """Serves the model over HTTP (``POST /predict``), checks its answers on test rows, then stops.

    With ``aios run --serve`` it keeps serving until Ctrl-C. The model is run by whichever
    component of the stack runs its format (``run.load_predictor``).
    """

    formats = {% if 'framework' in kinds %}(NATIVE_FORMAT, "onnx"){% else %}("onnx",){% endif %}
    Params = {{ P }}DeployerParams
    params: {{ P }}DeployerParams
    tasks = ("classification",)  # add "regression" once it handles numeric targets (docs/regression.md)

    def __init__(self, params: {{ P }}DeployerParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_deploy(self, artifact: ModelArtifact, dataset: Dataset, run: RunContext) -> dict[str, Any]:
        from {{ pkg }} import _server

        return _server.deploy(artifact, dataset, run, self.params)
{%- endif %}
{%- if 'monitor' in kinds %}


# ---------------------------------------------------------------- monitor
class {{ P }}MonitorParams(Params):
    """Parameters of the ``{{ cookiecutter.plugin_name }}`` monitor (an item of a stack's ``monitors:``)."""

    filename: str = Field("events.log", pattern=r"^[^/\\]+$",
                          description="File in the run directory that receives one line per event.")
    steps: bool = Field(False, description="Also write progress inside epochs (many lines).")


class {{ P }}Monitor(Monitor):
    """Writes one line per run event (start, phases, epochs, artifacts, errors, end) to a file in the run directory."""

    Params = {{ P }}MonitorParams
    params: {{ P }}MonitorParams

    def __init__(self, params: {{ P }}MonitorParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    def _write(self, run: RunContext, event: str, fields: dict[str, Any]) -> None:
        from {{ pkg }} import _events

        _events.append(run.dir / self.params.filename, event, fields)

    @hookimpl
    def aios_on_run_start(self, run: RunContext) -> None:
        self._write(run, "run_start", {"name": run.name, "seed": run.seed, "resume": run.resume})

    @hookimpl
    def aios_on_phase_start(self, run: RunContext, phase: str) -> None:
        self._write(run, "phase_start", {"phase": phase})

    @hookimpl
    def aios_on_step(self, run: RunContext, phase: str, epoch: int, step: int, total_steps: int) -> None:
        if self.params.steps:
            self._write(run, "step", {"phase": phase, "epoch": epoch, "step": f"{step}/{total_steps}"})

    @hookimpl
    def aios_on_epoch_end(self, run: RunContext, phase: str, epoch: int, metrics: dict[str, float]) -> None:
        self._write(run, "epoch_end", {"phase": phase, **metrics, "epoch": epoch})

    @hookimpl
    def aios_on_artifact(self, run: RunContext, artifact: ModelArtifact) -> None:
        self._write(run, "artifact", {"name": artifact.name, "format": artifact.format, "path": artifact.path})

    @hookimpl
    def aios_on_phase_end(self, run: RunContext, phase: str, summary: dict[str, Any]) -> None:
        self._write(run, "phase_end", {"phase": phase, "seconds": summary.get("seconds")})

    @hookimpl
    def aios_on_error(self, run: RunContext, phase: str, error: BaseException) -> None:
        self._write(run, "error", {"phase": phase, "error": f"{type(error).__name__}: {error}"})

    @hookimpl
    def aios_on_run_end(self, run: RunContext, status: str) -> None:
        self._write(run, "run_end", {"status": status})
{%- endif %}
{%- if 'orchestrator' in kinds %}


# ---------------------------------------------------------------- orchestrator
class {{ P }}OrchestratorParams(Params):
    """Parameters of the ``{{ cookiecutter.plugin_name }}`` orchestrator (a stack's ``orchestrator:`` section)."""

    python: str = Field("", description="The Python the steps run (default: the one running aios).")


class {{ P }}Orchestrator(Orchestrator):
    """Runs a stack as a bash script of steps, one ``aios run --phases`` per phase, on this machine."""

    Params = {{ P }}OrchestratorParams
    params: {{ P }}OrchestratorParams

    def __init__(self, params: {{ P }}OrchestratorParams | None = None, name: str | None = None) -> None:
        super().__init__(params, name or NAME)

    @hookimpl
    def aios_compile_pipeline(self, stack: Any, phases: list[str], output: Path) -> Path:
        from {{ pkg }} import _orchestrate

        return _orchestrate.compile_script(stack.lock(), phases, Path(output), self.params.python or sys.executable)

    @hookimpl
    def aios_run_pipeline(self, stack: Any, phases: list[str], runs_root: Path, target: str | None) -> str:
        from aios_core import RunDirectory

        from {{ pkg }} import _orchestrate

        if target:
            raise ValueError(f"the {{ cookiecutter.plugin_name }} orchestrator runs on this machine only (--local), "
                             f"it cannot reach {target}")
        run_dir = RunDirectory.create(Path(runs_root), stack.name)
        script = self.aios_compile_pipeline(stack, phases, run_dir.path.parent / f".{run_dir.name}.pipeline.sh")
        _orchestrate.run_script(script, run_dir.path)
        return str(run_dir.path)
{%- endif %}
