"""Base classes for the eight kinds of component, and what each declares it can do.

A plugin's entry point names a subclass of one of these. ``Params`` is the pydantic
model of the parameters a stack may give it (unknown keys are errors); capability
attributes (``native_format``, ``frameworks``, ``input_formats``, ...) let the
kernel check that a stack's components fit together before any work starts.
"""

from __future__ import annotations

import importlib
import math
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

if TYPE_CHECKING:
    from aios_core.records import DataDescription


class Params(BaseModel):
    """Base for component parameters: unknown keys are rejected, values are validated.

    Numbers are stricter than pydantic's lax mode, for every parameter of every plugin:
    a boolean is not a number (``epochs: yes`` is not 1 epoch), a float is not an integer
    (``threads: 1.0``), a number is not a boolean, and no float is NaN or infinite.
    Strings still convert, so ``epochs: "${AIOS_EPOCHS:-20}"`` works.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    @model_validator(mode="wrap")
    @classmethod
    def _no_lax_numbers(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        slips: list[InitErrorDetails] = []
        if isinstance(data, Mapping):
            for name, info in cls.model_fields.items():
                key = info.alias or name
                if key in data:
                    slips += _number_slips(info.annotation, data[key], (key,))
        try:
            validated = handler(data)
        except ValidationError as error:
            if not slips:
                raise
            slipped = {slip["loc"] for slip in slips}
            slips += [InitErrorDetails(type=PydanticCustomError(item["type"], item["msg"], item.get("ctx")),
                                       loc=item["loc"], input=item["input"])
                      for item in error.errors() if item["loc"] not in slipped]
        if slips:
            order = list(data)  # report in the order the fields were written
            slips.sort(key=lambda slip: order.index(slip["loc"][0]) if slip["loc"][0] in order else len(order))
            raise ValidationError.from_exception_data(cls.__name__, slips)
        return validated


def _arms(annotation: Any) -> list[Any]:
    """The types a value of ``annotation`` may have: ``int | None`` and ``Annotated[int, ...]`` give ``int``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _arms(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [arm for argument in get_args(annotation) for arm in _arms(argument)]
    return [annotation]


def _number_slips(annotation: Any, value: Any, loc: tuple) -> list[InitErrorDetails]:
    """Where ``value`` would reach a number or boolean of ``annotation`` only by pydantic's lax coercion."""
    arms = _arms(annotation)
    if Any in arms:
        return []
    numbers, integer_only = int in arms or float in arms, int in arms and float not in arms
    if (isinstance(value, bool) and numbers and bool not in arms
            or isinstance(value, float) and integer_only
            or isinstance(value, str) and "." in value and integer_only and str not in arms  # "${EPOCHS:-2.0}"
            or type(value) is int and bool in arms and not numbers):
        expected = "an integer" if int in arms else "a number" if float in arms else "a boolean (true or false)"
        return [InitErrorDetails(type=PydanticCustomError("strict_type", "Input should be {expected}", {"expected": expected}),
                                 loc=loc, input=value)]
    for arm in arms:
        origin, arguments = get_origin(arm), get_args(arm)
        if isinstance(value, list) and isinstance(origin, type) and issubclass(origin, Sequence) and arguments:
            items = arguments if origin is tuple and arguments[-1] is not Ellipsis else [arguments[0]] * len(value)
            return [slip for index, (item, argument) in enumerate(zip(value, items, strict=False))
                    for slip in _number_slips(argument, item, (*loc, index))]
        if isinstance(value, dict) and isinstance(origin, type) and issubclass(origin, Mapping) and len(arguments) == 2:
            return [slip for key, item in value.items() for slip in _number_slips(arguments[1], item, (*loc, key))]
    return []


_NAME_TUPLES = ("export_formats", "frameworks", "input_formats", "formats", "tasks")
"""Capability attributes that list names; a bare string there (``("onnx")``) is a common slip."""


class Component:
    """A selected, configured plugin component; its ``@hookimpl`` methods are its behaviour.

    ``tasks`` names the tasks (``aios_core.vocabulary.TASKS``) it supports; a stack whose
    data has another task is refused at ``aios validate`` (and, when the task is inferred
    from the data, when the data is loaded). ``streams`` says it works when the data is
    streamed (``Dataset.streaming``: the splits are read through ``Dataset.batches`` and the
    ``x_*`` arrays only sample them); trainers and compressors, which read every row, must
    declare it, or are refused for streamed data.
    """

    kind: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    streams: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attribute in _NAME_TUPLES:
            value = cls.__dict__.get(attribute)
            if value is not None and not isinstance(value, property) and not (isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)):
                raise TypeError(f"{cls.__qualname__}.{attribute} must be a tuple of names, e.g. ('onnx',); "
                                f"found {value!r}")

    def __init__(self, params: Params | None = None, name: str | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.name = name or type(self).__name__.lower()

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        """What the component accepts and produces, as shown by ``aios plugins info``."""
        return {}

    def override_problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` cannot replace this component's parameter ``name`` (a tuner's choice), or None if it can.

        Checked by the component's own ``Params``, with its other parameters as configured.
        """
        from aios_core.stack.problems import describe, expected

        try:
            type(self.params).model_validate({**self.params.model_dump(), name: value})
        except ValidationError as error:
            items = [item for item in error.errors() if item["loc"][:1] == (name,)] or error.errors()
            return f"found {describe(value)}, expected {expected(items[0])}"
        return None

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name!r}>"


def task_refusal(component: Component, task: str | None) -> str | None:
    """One line saying ``component`` does not support ``task`` (None when it does, or the task is unknown)."""
    if task is None or task in component.tasks:
        return None
    return (f"{component.kind} '{component.name}' supports {' and '.join(component.tasks) or 'no task'} only, but the "
            f"data's task is {task}; choose a {component.kind} that declares {task} "
            f"(aios plugins info NAME shows its tasks)")


def streaming_refusal(component: Component, streaming: bool | None) -> str | None:
    """One line saying ``component`` reads whole arrays and so cannot use streamed data (None when it can)."""
    if not streaming or component.streams:
        return None
    return (f"{component.kind} '{component.name}' reads whole arrays, but the data is streamed (it does not fit "
            f"in memory as one); choose a {component.kind} that streams (the torch trainer does) or load the "
            "data in memory (data.streaming: false)")


class Framework(Component):
    """Builds, saves, loads and exports models (hooks: ``aios_build_model`` ...)."""

    kind = "framework"
    native_format: ClassVar[str]
    export_formats: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {"native_format": cls.native_format, "export_formats": list(cls.export_formats)}

    @property
    def formats(self) -> tuple[str, ...]:
        return (self.native_format, *self.export_formats)


class Datastore(Component):
    """Loads, cleans, preprocesses, versions and splits data (hook: ``aios_load_dataset``)."""

    kind = "datastore"


class Trainer(Component):
    """Trains a model of one of ``frameworks`` (hook: ``aios_train``)."""

    kind = "trainer"
    frameworks: ClassVar[tuple[str, ...]] = ()
    streams: ClassVar[bool] = False  # a trainer that reads Dataset.batches declares True

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {"frameworks": list(cls.frameworks)}


class Tuner(Component):
    """Searches model and trainer parameters (hook: ``aios_tune``)."""

    kind = "tuner"


class Compressor(Component):
    """Turns a model of one of ``input_formats`` into a model of ``output_format`` (hook: ``aios_compress``)."""

    kind = "compressor"
    input_formats: ClassVar[tuple[str, ...]] = ()
    output_format: ClassVar[str]
    streams: ClassVar[bool] = False  # one that needs only a sample of rows (calibration) declares True

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {"input_formats": list(cls.input_formats), "output_format": cls.output_format}

    @classmethod
    def works_before_export(cls, native_format: str) -> bool:
        """Whether it compresses the framework's native model (``native_format`` in, ``native_format`` out).

        Such a compressor runs after ``train`` and before ``export``, which then exports its
        output; the others run after ``export``.
        """
        return native_format in cls.input_formats and cls.output_format == native_format


class Deployer(Component):
    """Serves or packages a model of one of ``formats`` (hooks: ``aios_deploy``, ``aios_serve``)."""

    kind = "deployer"
    formats: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {"formats": list(cls.formats)}


class Monitor(Component):
    """Watches the run lifecycle (hooks: ``aios_on_*``)."""

    kind = "monitor"
    tasks = ("classification", "regression")


class Orchestrator(Component):
    """Runs a stack as a pipeline of steps, one per phase, elsewhere than in one process (hooks:
    ``aios_compile_pipeline``, ``aios_run_pipeline``); each step is ``aios run --phases``."""

    kind = "orchestrator"
    tasks = ("classification", "regression")


BASE_CLASSES: dict[str, type[Component]] = {
    cls.kind: cls for cls in (Framework, Datastore, Trainer, Tuner, Compressor, Deployer, Monitor, Orchestrator)
}


class ModelParams(Params):
    """The model parameters every framework plugin shares, so swapping frameworks is one line.

    ``architecture`` is ``mlp``, ``cnn`` (for image data) or a user factory
    ``package.module:function`` that receives ``(dataset, **options)``.
    """

    architecture: str = Field("mlp", pattern=r"^(mlp|cnn|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$",
                              description="mlp, cnn (image data) or a factory package.module:function.")
    hidden_units: list[PositiveInt] = Field(default_factory=lambda: [128], min_length=1,
                                            description="Units of each hidden dense layer.")
    conv_channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32], min_length=1,
                                             description="Channels of each convolution (cnn only).")
    kernel_size: int = Field(3, ge=1, le=11, description="Convolution kernel size (cnn only).")
    activation: Literal["relu", "tanh", "gelu"] = Field("relu", description="Activation after each hidden layer.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the output layer.")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for a factory.")

    def load_factory(self) -> Callable[..., Any]:
        """The user factory ``package.module:function`` that ``architecture`` names; ValueError saying why not."""
        module_name, _, function_name = self.architecture.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), function_name)
        except Exception as error:  # an import may fail in any way; the factory's own error says why
            from aios_core.errors import one_line

            raise ValueError(f"found {self.architecture!r}, but it does not load ({one_line(error)}); expected mlp, "
                             "cnn or a package.module:function importable here (installed, or on PYTHONPATH)") from error
        if not callable(factory):
            raise ValueError(f"found {self.architecture!r}, which is not a function; "  # noqa: TRY004 -- a stack value
                             "expected package.module:function returning a model")
        return factory

    def environment_problems(self, data: DataDescription | None) -> list[tuple[str, str]]:
        """What cannot work before a run starts: a factory that does not load, a cnn for rows with no image shape.

        A framework's ``aios_validate`` returns these (plus its own).
        """
        if ":" in self.architecture:
            try:
                self.load_factory()
            except ValueError as error:
                return [("architecture", str(error))]
        if self.architecture == "cnn" and data is not None and data.images is False:
            rows = f"rows of {data.num_features} features" if data.num_features else "feature rows"
            return [("architecture", (f"found 'cnn', but the data are {rows} with no image shape; expected mlp, "
                                      "or a datastore that gives an image shape "
                                      "(e.g. files with image_shape: [channels, height, width])"))]
        return []


class TrainingParams(Params):
    """The trainer parameters epoch-based trainers share, so swapping trainers keeps the stack's values.

    A trainer may subclass it to add its own (``ray-train`` adds ``num_workers``, ...).
    """

    epochs: int = Field(20, ge=1, description="Maximum number of passes over the training split.")
    batch_size: int = Field(64, ge=1, description="Rows per optimizer step.")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="Optimizer.")
    learning_rate: float = Field(1e-3, gt=0.0, description="Initial learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (ignored by adam).")
    weight_decay: float = Field(0.0, ge=0.0, description="Weight decay (each trainer's README says in which form).")
    lr_schedule: Literal["none", "step", "cosine"] = Field("none", description="Learning-rate schedule per epoch.")
    lr_step_size: int = Field(10, ge=1, description="Epochs between decays (lr_schedule: step).")
    lr_gamma: float = Field(0.5, gt=0.0, le=1.0, description="Decay factor (lr_schedule: step).")
    loss: Literal["auto", "cross_entropy", "mse", "mae", "huber"] = Field(
        "auto", description="Training loss; auto: cross_entropy for classification, mse for regression "
                            "(mae and huber are regression losses).")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many epochs without val_loss improvement; null: never."
    )
    early_stopping_min_delta: float = Field(0.0, ge=0.0, description="Smallest val_loss decrease that counts.")
    progress_updates: int = Field(4, ge=0, description="run.report_step calls per epoch; 0: none.")
    checkpoint_interval_s: float = Field(
        10.0, ge=0.0, description="Write a checkpoint when this many seconds have passed since the last one (0: every "
                                  "epoch); the newest is always written at the end, on Ctrl-C and on SIGTERM.")

    def loss_for(self, task: str) -> str:
        """The loss ``loss`` names for ``task`` (``auto`` resolved); ValueError when it does not fit the task."""
        if self.loss == "auto":
            return "mse" if task == "regression" else "cross_entropy"
        if (self.loss == "cross_entropy") != (task == "classification"):
            fits = "cross_entropy" if task == "classification" else "mse, mae or huber"
            raise ValueError(f"trainer.loss: found {self.loss!r}, which does not fit the data's task {task}; "
                             f"expected auto or {fits}")
        return self.loss

    def scheduled_learning_rate(self, epoch: int) -> float:
        """The learning rate of 1-based ``epoch`` under ``lr_schedule``, as PyTorch's ``StepLR`` and
        ``CosineAnnealingLR(T_max=epochs)`` give it, for trainers whose library has no scheduler of its own."""
        done = epoch - 1
        if self.lr_schedule == "step":
            return self.learning_rate * self.lr_gamma ** (done // self.lr_step_size)
        if self.lr_schedule == "cosine":
            return self.learning_rate * (1 + math.cos(math.pi * done / self.epochs)) / 2
        return self.learning_rate
