"""AIOS datastores: scikit-learn's bundled data sets (``sklearn``) and data files (``files``).

This module holds only the components and their parameters, so listing plugins stays
cheap. Checking a stack reads the data file's header only (``_checks``); numpy, pandas and
scikit-learn are imported when data is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aios_core import Datastore, Params, hookimpl
from pydantic import ConfigDict, Field, PositiveInt, ValidationInfo, field_validator

if TYPE_CHECKING:
    from aios_core import DataDescription, Dataset, RunContext, ValidationContext

__version__ = "0.1.0"
__all__ = [
    "CleanParams",
    "DataParams",
    "FilesDatastore",
    "PreprocessParams",
    "SklearnDatastore",
    "SplitParams",
]

BUNDLED_DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")  # the keys of _bundled.BUNDLED_SETS
FILE_FORMATS = ("csv", "parquet", "npz", "idx")
_LOCATION_FIELDS = {"path", "labels_path"}
"""Where a file lies is not part of what it holds: moving it keeps its content hash."""


class _DocumentedParams(Params):
    """Parameters whose attribute docstrings become descriptions in the stack JSON Schema."""

    model_config = ConfigDict(**Params.model_config, use_attribute_docstrings=True)


class CleanParams(_DocumentedParams):
    """Which rows to drop before splitting."""

    drop_missing: bool = True
    """Drop rows with any missing feature value or a missing label."""
    drop_duplicates: bool = False
    """Drop repeated rows (identical features and label), keeping the first."""


class PreprocessParams(_DocumentedParams):
    """How features are encoded and scaled; the statistics come from the train split only."""

    scaling: Literal["none", "scale", "standardize", "minmax"] = "standardize"
    """``scale``: x / scale_factor; ``standardize``: (x - mean) / std; ``minmax``: (x - min) / (max - min)."""
    scale_factor: float = Field(1.0, gt=0, allow_inf_nan=False)
    """The divisor when ``scaling`` is ``scale`` (16 for digits, 255 for 8-bit images)."""
    one_hot: list[str] = Field(default_factory=list)
    """Text or category columns of a CSV or Parquet file to one-hot encode before scaling."""
    target_scaling: Literal["none", "standardize"] = "standardize"
    """Regression only: ``standardize`` trains on (y - mean) / std of the train split; predictions are turned
    back into the target's units by evaluation and the server (the statistics are recorded)."""

    @field_validator("scale_factor")
    @classmethod
    def _factor_needs_scale(cls, factor: float, info: ValidationInfo) -> float:
        scaling = info.data.get("scaling", "scale")
        if factor != 1.0 and scaling != "scale":
            raise ValueError(f"1.0, since scaling is {scaling!r} (scale_factor applies only with scaling 'scale')")
        return factor

    @field_validator("one_hot")
    @classmethod
    def _each_column_once(cls, columns: list[str]) -> list[str]:
        repeated = sorted({name for name in columns if columns.count(name) > 1})
        if repeated:
            raise ValueError(f"each column named once ({', '.join(map(repr, repeated))} repeated)")
        return columns


class SplitParams(_DocumentedParams):
    """Fractions of the rows held out, chosen by the run's seed: per class (stratified) for classification,
    uniformly at random for regression."""

    validation: float = Field(0.15, gt=0, lt=0.5)
    """Fraction of all rows held out for validation."""
    test: float = Field(0.15, gt=0, lt=0.5)
    """Fraction of all rows held out for the test."""
    method: Literal["auto", "stratified", "hash"] = "auto"
    """``stratified``: per class (uniformly random for regression), exact fractions; ``hash``: each row by a hash of
    its row number and the seed, fractions in expectation (what streaming does); ``auto``: hash when streaming, else
    stratified."""


class DataParams(_DocumentedParams):
    """Parameters every AIOS datastore of this distribution shares."""

    task: Literal["auto", "classification", "regression"] = "auto"
    """What the model predicts. ``auto``: regression for a numeric target with more than 20 distinct values
    (or a regression set such as diabetes), else classification; the choice is logged and recorded."""
    clean: CleanParams = Field(default_factory=CleanParams)
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams)
    split: SplitParams = Field(default_factory=SplitParams)


class SklearnDatastore(Datastore):
    """One of scikit-learn's bundled data sets (no download)."""

    tasks = ("classification", "regression")

    class Params(DataParams):
        dataset: Literal["digits", "iris", "wine", "breast_cancer", "diabetes"] = "digits"
        """Which of scikit-learn's bundled loaders to use (no download)."""

    params: Params

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {"datasets": list(BUNDLED_DATASETS)}

    @hookimpl
    def aios_describe_data(self) -> DataDescription | None:
        """The bundled set's known sizes: features, classes, and digits' 1x8x8 image shape."""
        from aios_data._checks import inspect_bundled

        return inspect_bundled(self.params).description()

    @hookimpl
    def aios_validate(self) -> list[tuple[str, str]]:
        """scikit-learn (or pandas, numpy) not installed, one-hot columns, split fractions that leave a split short."""
        from aios_data._checks import inspect_bundled

        return inspect_bundled(self.params).problems

    @hookimpl
    def aios_load_dataset(self, run: RunContext) -> Dataset:
        from aios_data._bundled import load_bundled
        from aios_data._prepare import prepare_dataset

        raw = load_bundled(self.params.dataset)
        return prepare_dataset(raw, self.params, seed=run.seed,
                               hash_params=_hash_params(self.params), log=run.log,
                               progress=run.report_progress)


class FilesDatastore(Datastore):
    """A labelled data file: CSV or Parquet table, NumPy ``.npz`` arrays, or MNIST-style IDX."""

    tasks = ("classification", "regression")

    class Params(DataParams):
        path: Path
        """The data file; for IDX, the images file (``train-images-idx3-ubyte[.gz]``)."""
        format: Literal["auto", "csv", "parquet", "npz", "idx"] = "auto"
        """``auto`` tells the format from the file name."""
        target: str | list[str] = Field("target", min_length=1)
        """The label column of a CSV or Parquet file (class labels, or numbers for regression); a list of numeric
        columns for multi-output regression (``[price, demand]``: the model predicts one value per column)."""
        x_key: str = Field("x", min_length=1)
        """The NPZ array of features, one row (or image) per sample."""
        y_key: str = Field("y", min_length=1)
        """The NPZ array of labels, one per sample."""
        labels_path: Path | None = None
        """The IDX labels file; by default the images file's name with ``labels-idx1-ubyte``."""
        image_shape: tuple[PositiveInt, PositiveInt, PositiveInt] | None = None
        """(channels, height, width) of each row, overriding what the file implies."""
        streaming: bool = False
        """Parquet only: read the rows a window at a time instead of loading the table (a file, a directory of files,
        or an s3://, gs:// or file:// URI); statistics come from a first pass, splits from a hash of the row number."""
        window_rows: PositiveInt = 262_144
        """Streaming: rows read and shuffled at a time (at least one row group's); bounds the memory."""
        sample_rows: PositiveInt = 10_000
        """Streaming: rows of each split held in the Dataset's arrays (its first ones), for calibration and drift."""

        @field_validator("target")
        @classmethod
        def _target_columns(cls, target: str | list[str]) -> str | list[str]:
            if isinstance(target, str):
                return target
            if any(not name for name in target):
                raise ValueError("column names, none empty")
            repeated = sorted({name for name in target if target.count(name) > 1})
            if repeated:
                raise ValueError(f"each column named once ({', '.join(map(repr, repeated))} repeated)")
            return target[0] if len(target) == 1 else target

        @property
        def targets(self) -> list[str]:
            """The target columns: one, or several for multi-output regression."""
            return [self.target] if isinstance(self.target, str) else list(self.target)

    params: Params

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {"formats": list(FILE_FORMATS)}

    @hookimpl
    def aios_describe_data(self, context: ValidationContext) -> DataDescription | None:
        """Features and image shape as the parameters and the file's header say (classes are not counted)."""
        if self.params.streaming:
            from aios_data._streaming import inspect_streamed

            return inspect_streamed(self.params)[0]
        from aios_data._checks import inspect_files

        return inspect_files(self.params, context.source).description()

    @hookimpl
    def aios_validate(self, context: ValidationContext) -> list[tuple[str, str]]:
        """The files exist and are readable, in a format it reads, with the columns or arrays the parameters name."""
        if self.params.streaming:
            from aios_data._streaming import inspect_streamed

            return inspect_streamed(self.params)[1]
        from aios_data._checks import inspect_files

        return inspect_files(self.params, context.source).problems

    @hookimpl
    def aios_load_dataset(self, run: RunContext) -> Dataset:
        hash_params = _hash_params(self.params)
        if self.params.streaming:
            from aios_data._streaming import load_streamed

            return load_streamed(self.params, seed=run.seed, hash_params=hash_params, log=run.log,
                                 progress=run.report_progress)
        from aios_data._files import read_data_file
        from aios_data._prepare import prepare_dataset

        raw = read_data_file(self.params, progress=run.report_progress, pending=True)
        return prepare_dataset(raw, self.params, seed=run.seed, hash_params=hash_params, log=run.log,
                               progress=run.report_progress)


_STREAMING_DEFAULTS = {"streaming": False, "window_rows": 262_144, "sample_rows": 10_000}


def _hash_params(params: DataParams) -> dict[str, Any]:
    """The parameters a content hash covers: not where the file lies, and not the streaming and split-method
    parameters at their defaults (added later: the hashes of existing stacks stay as they were)."""
    dumped = params.model_dump(mode="json", exclude=_LOCATION_FIELDS)
    if dumped.get("split", {}).get("method") == "auto":
        del dumped["split"]["method"]
    for name, default in _STREAMING_DEFAULTS.items():
        if dumped.get(name, default) == default or name == "window_rows":  # the window orders batches, not splits
            dumped.pop(name, None)
    return dumped
