"""The values that pass between components: data splits, model artifacts, results."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from aios_core.batches import SplitStream

Predictor = Callable[["np.ndarray"], "np.ndarray"]
"""Maps a float32 batch (n, features) to class probabilities (n, classes), or for a regression
data set to predictions (n, targets) in the units of ``Dataset.y_*`` (scaled, if ``target_scaling`` says so)."""


@dataclass
class Dataset:
    """Train, validation and test splits of one labelled data set.

    Features are float32 arrays of shape (n, features); labels are int64 class indices.
    ``image_shape`` is (channels, height, width) when each row is a flattened image, so a
    convolutional model can reshape it. ``preprocessing`` describes, as JSON, what was
    applied to raw rows (a server must apply the same); ``content_hash`` identifies the
    raw data and the parameters that produced the splits.

    ``task`` is ``classification`` or ``regression``. For regression, labels are float32
    arrays of shape (n, targets), ``class_names`` is empty, ``target_names`` names the
    columns, and ``target_scaling`` records how they were scaled (``{"scaling":
    "standardize", "mean": [...], "std": [...]}``, or ``{}`` when not), which
    ``unscale_targets`` inverts: models predict scaled values, people read un-scaled ones.

    A streaming datastore, whose splits do not fit in memory, fills ``streams`` (``train``,
    ``val``, ``test``: ``aios_core.batches.SplitStream``); the ``x_*`` / ``y_*`` arrays then
    hold a bounded sample of each split (for calibration, drift references, smoke tests),
    and whatever needs every row reads ``batches(split, ...)``, which serves both forms.

    An in-memory datastore may instead fill ``views`` (``aios_core.batches.IndexedSplit``: the
    splits as row numbers into one matrix, scaled as read) and leave ``x_*`` ``None``: each
    ``x_*`` array is then gathered and scaled on first access and kept, while ``split``,
    ``batches`` and ``sample`` read through the view and never gather a whole split.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    content_hash: str
    image_shape: tuple[int, int, int] | None = None
    feature_names: list[str] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"
    target_names: list[str] = field(default_factory=list)
    target_scaling: dict[str, Any] = field(default_factory=dict)
    streams: dict[str, SplitStream] = field(default_factory=dict)
    views: dict[str, SplitStream] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.views:  # gathered on first access (__getattr__)
            if self.__dict__.get(f"x_{name}", 0) is None:
                del self.__dict__[f"x_{name}"]

    def __getattr__(self, attribute: str) -> Any:
        """``x_<split>`` of a split held as a view (``views``): the whole split, gathered and scaled once."""
        views = self.__dict__.get("views") or {}
        if attribute.startswith("x_") and attribute[2:] in views:
            view = views[attribute[2:]]
            self.__dict__[attribute] = view.read(0, view.rows)[0]
            return self.__dict__[attribute]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")

    @property
    def streaming(self) -> bool:
        """Whether the splits are streamed (``streams``) and the arrays only sample them."""
        return bool(self.streams)

    def split(self, name: str) -> SplitStream:
        """The split ``name`` (``train``, ``val``, ``test``) as a ``SplitStream``: streamed, or the arrays held."""
        from aios_core.batches import ArraySplit

        if name in self.streams:
            return self.streams[name]
        if name in self.views:
            return self.views[name]
        return ArraySplit(getattr(self, f"x_{name}"), getattr(self, f"y_{name}"))

    def rows(self, name: str) -> int:
        """The number of rows in the split ``name`` (all of them, also when streamed)."""
        return self.split(name).rows

    def batches(self, name: str, batch_size: int, *, seed: int | None = None, epoch: int = 0,
                window_rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(x, y)`` batches covering every row of the split ``name`` once (``aios_core.batches.iter_batches``).

        With ``seed``, shuffled for ``epoch`` by the rule in ``aios_core.batches``; in split order without.
        """
        from aios_core.batches import iter_batches

        return iter_batches(self.split(name), batch_size, seed=seed, epoch=epoch, window_rows=window_rows)

    def sample(self, name: str, count: int, seed: int) -> np.ndarray:
        """Up to ``count`` feature rows of the split ``name``, drawn without replacement with ``seed``, in split order.

        The rows ``np.sort(default_rng(seed).choice(rows, count, replace=False))``, gathered alone (a split held as
        a view is not gathered whole); of a streamed split, of the sample its ``x_*`` array holds.
        """
        import numpy as np

        from aios_core.batches import ArraySplit

        source = self.views.get(name) or ArraySplit(getattr(self, f"x_{name}"), getattr(self, f"y_{name}"))
        count = min(count, source.rows)
        return source.take(np.sort(np.random.default_rng(seed).choice(source.rows, size=count, replace=False)))

    @property
    def num_features(self) -> int:
        if "train" in self.views:
            return int(self.views["train"].num_features)
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_targets(self) -> int:
        """Columns a regression model predicts (0 for classification)."""
        if self.task != "regression":
            return 0
        return len(self.target_names) or (int(self.y_train.shape[1]) if self.y_train.ndim == 2 else 1)

    @property
    def num_outputs(self) -> int:
        """The width of the model's output: classes, or targets for regression."""
        return self.num_targets if self.task == "regression" else self.num_classes

    def unscale_targets(self, values: np.ndarray) -> np.ndarray:
        """Regression values (n, targets) in the target's own units: ``target_scaling`` inverted (float64)."""
        return unscale_targets(values, self.target_scaling)

    @property
    def target_scale(self) -> list[float]:
        """Per target, one unit of a model's output in the target's units (the std when standardized, else 1), so a
        trainer reports RMSE and MAE of the scaled values in the target's units: the error times the scale."""
        if self.target_scaling.get("scaling") == "standardize":
            return [float(std) for std in self.target_scaling["std"]]
        return [1.0] * self.num_targets

    def summary(self) -> dict[str, Any]:
        """A JSON-able description, recorded in the run directory."""
        return {
            "name": self.name,
            "task": self.task,
            "content_hash": self.content_hash,
            "num_features": self.num_features,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "sizes": {name: self.rows(name) for name in ("train", "val", "test")},
            **({"streaming": True} if self.streaming else {}),
            "preprocessing": self.preprocessing,
            **({"target_names": self.target_names, "target_scaling": self.target_scaling}
               if self.task == "regression" else {}),
        }


def unscale_targets(values: Any, target_scaling: dict[str, Any]) -> np.ndarray:
    """``values`` (n, targets) with a ``Dataset.target_scaling`` record inverted: ``x * std + mean`` for
    ``standardize``, unchanged for none. The server applies the same record, read from the run directory."""
    import numpy as np

    out = np.asarray(values, dtype=np.float64)
    if target_scaling.get("scaling") == "standardize":
        out = out * np.asarray(target_scaling["std"], dtype=np.float64) + np.asarray(target_scaling["mean"], dtype=np.float64)
    return out


@dataclass(frozen=True)
class DataDescription:
    """What a datastore's ``Dataset`` will look like, known before loading it (``aios_describe_data``).

    A field is ``None`` when it is not known until the data is read. ``images`` says
    whether each row is a flattened image (``image_shape`` then gives its shape when
    known) or plain features (``False``), so a framework can refuse a ``cnn`` for
    tabular rows before a run starts. ``task`` is ``classification`` or ``regression`` when
    declared or known (``None`` when it is inferred from the target at load time), so
    ``aios validate`` can refuse a component that does not support it. ``streaming`` says the
    splits will be streamed (``Dataset.streams``), so a component that reads whole arrays
    (``Component.streams`` false) is refused before a run.
    """

    num_features: int | None = None
    num_classes: int | None = None
    image_shape: tuple[int, int, int] | None = None
    images: bool | None = None
    task: str | None = None
    streaming: bool = False


def hash_arrays(*parts: Any, digest: Any = None) -> str:
    """A sha256 over numpy arrays (shape, dtype and bytes) and JSON-able values, in order.

    ``digest`` is another ``hashlib``-like object (``update``, ``hexdigest``) to feed instead, say a faster,
    non-cryptographic one (aios-data's content hash: xxh3-128).
    """
    import json

    import numpy as np

    digest = hashlib.sha256() if digest is None else digest
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(array_header(part.dtype, part.shape))
            _hash_buffer(digest, part)
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def array_header(dtype: Any, shape: tuple[int, ...]) -> bytes:
    """What ``hash_arrays`` feeds its digest before an array's C-order bytes: the dtype and shape.

    With it an array that arrives a piece at a time is hashed as it comes (``digest.update(array_header(...))``,
    then each piece's bytes in order), and the digest is passed on to ``hash_arrays`` for the parts after it:
    the same hash as ``hash_arrays(array, *rest)``.
    """
    import numpy as np

    return f"{np.dtype(dtype).str}{tuple(shape) or (1,)}".encode()  # as np.ascontiguousarray sees a 0-d array


_HASH_CHUNK_BYTES = 1 << 24


def _hash_buffer(digest: Any, array: Any) -> None:
    """Feed ``array``'s bytes in C order to ``digest`` without copying a contiguous array whole.

    A contiguous array is read through its buffer; any other is copied a chunk of rows at a time.
    """
    import numpy as np

    if array.dtype.hasobject:
        digest.update(array.tobytes())
        return
    if array.flags.c_contiguous:
        digest.update(array.reshape(-1).view(np.uint8))
        return
    rows = max(1, _HASH_CHUNK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        digest.update(np.ascontiguousarray(array[start:start + rows]).reshape(-1).view(np.uint8))


@dataclass
class ModelArtifact:
    """A model file written by a run: its path, format and where it came from.

    ``format`` is what can load it (``torch``, ``keras``, ``onnx``); ``name`` is its
    role in the run (``native``, ``onnx``, ``int8``); ``metrics`` carries what the
    producer measured.
    """

    name: str
    path: Path
    format: str
    producer: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "format": self.format,
                "producer": self.producer, "metrics": self.metrics}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelArtifact:
        return cls(name=data["name"], path=Path(data["path"]), format=data["format"],
                   producer=data["producer"], metrics=data.get("metrics", {}))


@dataclass
class TrainResult:
    """What a trainer returns: the trained model and its per-epoch history.

    ``history`` is one dict of metrics per epoch (``epoch``, ``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``); ``best_epoch`` is the epoch
    whose weights the model holds.
    """

    model: Any
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool = False

    @property
    def final_metrics(self) -> dict[str, float]:
        return dict(self.history[self.best_epoch - 1]) if self.history else {}


@dataclass
class TuneResult:
    """What a tuner returns: the best parameters found, their value and every trial."""

    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    """More JSON-able facts for the tune phase's summary in ``state.json`` (objectives, a Pareto front, the
    study's storage); keys other than ``best_params``, ``best_value``, ``trials`` and ``seconds``."""
