"""The model repository: where served models come from, and the loaded ONNX Runtime sessions.

A model source is either a run directory (its final ONNX model, class names and
preprocessing) or a bundle model directory written by the ``kserve`` deployer
(``model.onnx`` next to ``model.json``). Each source becomes one version of one model
name; a name may have several versions, and the newest loaded one answers requests
that name no version.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model.onnx"
MODEL_JSON = "model.json"
_ONNX_DATATYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(int64)": "INT64", "tensor(int32)": "INT32",
    "tensor(uint8)": "UINT8", "tensor(int8)": "INT8", "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RepositoryError(Exception):
    """A model source that cannot be served; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ModelSpec:
    """What serving one model version needs: the ONNX file and what the run recorded about it."""

    name: str
    version: str
    path: Path
    class_names: list[str] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    source: str = ""
    task: str = "classification"
    """``regression``: the model's output is ``predictions`` (n, targets), answered in the target's units."""
    target_names: list[str] = field(default_factory=list)
    target_scaling: dict[str, Any] = field(default_factory=dict)
    """How the run scaled the target (``Dataset.target_scaling``); the server inverts it."""

    def to_json(self) -> dict[str, Any]:
        """The ``model.json`` of a bundle (the ONNX file sits next to it)."""
        return {"name": self.name, "version": self.version, "class_names": self.class_names,
                "preprocessing": self.preprocessing, "threads": self.threads, "task": self.task,
                "target_names": self.target_names, "target_scaling": self.target_scaling}


def check_name(name: str, what: str = "model name") -> str:
    if not _NAME.match(name):
        raise RepositoryError(f"{what} {name!r} is not usable in a URL: use letters, digits, '_', '.', '-' "
                              "(at most 128, starting with a letter or digit)")
    return name


def spec_from_run_dir(path: str | Path, name: str | None = None, version: str | None = None) -> ModelSpec:
    """The final ONNX model of a run directory, named for its stack and versioned by its timestamp.

    Read through the run record (``aios_core.RunDirectory``): the lock file, the newest
    ``onnx`` artifact (``final_artifact(["onnx"])``: the int8 model of a compressor, else
    the exported one) and the data summary (class names, preprocessing).
    """
    import yaml

    from aios_core import RunDirectory

    folder = Path(path).expanduser().resolve()
    try:
        run = RunDirectory.open(folder)
    except ValueError:
        if (folder / MODEL_JSON).is_file():
            return spec_from_bundle(folder)
        raise RepositoryError(f"{path}: not a run directory (no {RunDirectory.LOCK}) nor a bundle model "
                              f"(no {MODEL_JSON}); see aios runs list", 400) from None
    try:
        lock = run.read_lock()
        artifact = run.final_artifact(["onnx"])
        data = run.read_data_summary() if artifact is not None else {}
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise RepositoryError(f"{run.path}: cannot read the run's records ({error}); did its data phase finish?") from None
    if artifact is None:
        raise RepositoryError(f"{run.path}: the run has no ONNX model (state.json phases export/compress); "
                              "add export_formats: [onnx] to the stack's framework and run it again")
    if not Path(artifact.path).is_file():
        raise RepositoryError(f"{run.path}: the final model {artifact.path} is missing")
    stack_name = str(lock.get("name") or run.name)
    threads = int(lock.get("threads") or (lock.get("settings") or {}).get("threads") or 1)
    default_version = run.name.replace(f"-{stack_name}", "", 1) if f"-{stack_name}" in run.name else run.name
    return ModelSpec(name=check_name(name or stack_name), version=check_name(version or default_version, "version"),
                     path=Path(artifact.path), class_names=data.get("class_names"),
                     preprocessing=data.get("preprocessing") or {}, threads=max(1, threads), source=str(run.path),
                     **_task_fields(data))


def spec_from_bundle(path: str | Path) -> ModelSpec:
    """A bundle model directory: ``model.onnx`` and ``model.json`` (name, version, class names, preprocessing)."""
    folder = Path(path)
    try:
        meta = json.loads((folder / MODEL_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RepositoryError(f"{folder / MODEL_JSON}: cannot read ({error})") from None
    return ModelSpec(name=check_name(str(meta["name"])), version=check_name(str(meta["version"]), "version"),
                     path=folder / MODEL_FILE, class_names=meta.get("class_names"),
                     preprocessing=meta.get("preprocessing") or {}, threads=int(meta.get("threads") or 1),
                     source=str(folder), **_task_fields(meta))


def _task_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The task, target names and target scaling a data summary or a bundle's ``model.json`` records."""
    return {"task": str(record.get("task") or "classification"), "target_names": list(record.get("target_names") or []),
            "target_scaling": dict(record.get("target_scaling") or {})}


def specs_from_repository(root: str | Path) -> list[ModelSpec]:
    """Every bundle model under a model repository ``root/<name>/<version>/`` (or ``root`` itself)."""
    root = Path(root)
    if (root / MODEL_JSON).is_file():
        return [spec_from_bundle(root)]
    specs = [spec_from_bundle(p.parent) for p in sorted(root.glob(f"*/*/{MODEL_JSON}"))]
    if not specs:
        raise RepositoryError(f"{root}: no models (expected <name>/<version>/{MODEL_JSON})")
    return specs


def specs_from_paths(paths: list[str | Path]) -> list[ModelSpec]:
    """Run directories, bundle model directories or model repositories, in order."""
    from aios_core import RunDirectory

    specs: list[ModelSpec] = []
    for path in paths:
        folder = Path(path)
        if (folder / RunDirectory.LOCK).is_file() or (folder / MODEL_JSON).is_file():
            specs.append(spec_from_run_dir(folder))
        elif folder.is_dir() and any(folder.glob(f"*/*/{MODEL_JSON}")):
            specs.extend(specs_from_repository(folder))
        else:
            specs.append(spec_from_run_dir(folder))  # raises the run-directory error
    return specs


class LoadedModel:
    """One model version in memory: its ONNX Runtime session and its protocol metadata."""

    def __init__(self, spec: ModelSpec) -> None:
        from aios_core import onnx_session

        try:
            # The kernel's session (the one evaluation and the smoke test's reference use): spec.threads
            # intra-op threads, one inter-op thread, every graph optimization, the CPU provider.
            self.session = onnx_session(spec.path, spec.threads)
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
            raise RepositoryError(f"{spec.path}: ONNX Runtime cannot load it ({type(error).__name__}: {error})") from None
        self.spec = spec
        self.name, self.version = spec.name, spec.version  # attributes, not properties: read on every request
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 2:
            raise RepositoryError(f"{spec.path}: expected one float32 input of shape (n, features), found "
                                  f"{[(i.name, i.type, i.shape) for i in inputs]}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        features = inputs[0].shape[1]
        self.num_features = int(features) if isinstance(features, int) else None
        classes = outputs[0].shape[1] if len(outputs[0].shape) == 2 else None
        self.num_classes = int(classes) if isinstance(classes, int) else (
            len(spec.class_names) if spec.class_names else None)
        self.regression = spec.task == "regression"
        self.labels = np.asarray(spec.class_names, dtype=object) if spec.class_names and not self.regression else None
        self.output_names = [self.output_name] + (["label"] if self.labels is not None else [])
        """The outputs it answers with: the probabilities, and the labels when the run recorded class names;
        a regression model's ``predictions`` alone."""
        self.target_scaling = _target_scaling(spec.target_scaling) if self.regression else None
        self.scaling = _raw_scaling(spec.preprocessing, self.num_features)
        self._output_names = [self.output_name]
        # the session's C++ run, without InferenceSession.run's Python checks (input names, OrtValue ownership,
        # WebGPU graph capture: none of them can fail for the one float32 array predict passes); about a
        # twentieth of the server's Python bytecodes per request
        self._run = getattr(self.session, "_sess", self.session).run
        self.call_seconds = self._warm_up()

    def _warm_up(self) -> float:
        """Run one row a few times (ONNX Runtime initializes lazily); the median time of a one-row call."""
        import time

        row = np.zeros((1, self.num_features or 1), dtype=np.float32)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            try:
                self.predict(row)
            except Exception:  # noqa: BLE001 - a model whose width is unknown: the first request tells
                return 0.001
            times.append(time.perf_counter() - start)
        return sorted(times)[2]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) for a float32 batch (n, features); for a regression model its
        predictions (n, targets) in the target's units (the run's target scaling inverted, as
        ``aios_core.unscale_targets`` does), so every protocol and worker answers in those units."""
        output = self._run(self._output_names, {self.input_name: batch}, None)[0]
        if self.target_scaling is not None:
            std, mean = self.target_scaling
            output = (output.astype(np.float64) * std + mean).astype(np.float32)
        return output

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """The protocol's model metadata response."""
        outputs = [{"name": self.output_name, "datatype": "FP32", "shape": [-1, self.num_classes or -1]}]
        if self.labels is not None:
            outputs.append({"name": "label", "datatype": "BYTES", "shape": [-1]})
        return {
            "name": self.name, "versions": versions, "platform": "onnxruntime_onnx",
            "inputs": [{"name": self.input_name, "datatype": "FP32", "shape": [-1, self.num_features or -1]}],
            "outputs": outputs,
            "parameters": {"version": self.version, "class_names": self.spec.class_names,
                           "preprocessing": self.spec.preprocessing,
                           "raw_input": self.scaling is not None, "task": self.spec.task,
                           **({"target_names": self.spec.target_names, "target_scaling": self.spec.target_scaling,
                               "output_units": "the target's (target scaling inverted)"} if self.regression else {})},
        }


def _target_scaling(record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(std, mean)`` of a standardized target (``Dataset.target_scaling``), None when it was not scaled."""
    if record.get("scaling") != "standardize":
        return None
    return np.asarray(record["std"], dtype=np.float64), np.asarray(record["mean"], dtype=np.float64)


def _raw_scaling(preprocessing: dict[str, Any], width: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(shift, divisor)`` turning a raw row into the model's input, when the record says how."""
    kind = preprocessing.get("scaling")
    pairs = {"standardize": ("mean", "std"), "minmax": ("min", "range")}
    if kind == "none":
        return np.zeros(1, np.float64), np.ones(1, np.float64)
    if kind == "scale" and preprocessing.get("factor"):
        return np.zeros(1, np.float64), np.asarray([float(preprocessing["factor"])])
    if kind in pairs and all(k in preprocessing for k in pairs[kind]):
        shift = np.asarray(preprocessing[pairs[kind][0]], dtype=np.float64)
        divisor = np.asarray(preprocessing[pairs[kind][1]], dtype=np.float64)
        if width is None or shift.size in (1, width):
            return shift, divisor
    return None


class ModelRepository:
    """Known model versions (loaded or not), by name and version; safe to change while serving."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], ModelSpec] = {}
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._reasons: dict[tuple[str, str], str] = {}
        self._newest: dict[str, LoadedModel] = {}
        """The newest loaded version of each name (what a request naming no version gets), kept up to date."""
        self._lock = threading.Lock()

    def _update_newest(self) -> None:
        newest: dict[str, LoadedModel] = {}
        for key in sorted(self._loaded):
            newest[key[0]] = self._loaded[key]
        self._newest = newest

    def add(self, spec: ModelSpec, load: bool = True) -> LoadedModel | None:
        """Register ``spec``; load it now unless ``load`` is false. Replaces the same name and version."""
        key = (spec.name, spec.version)
        with self._lock:
            self._specs[key] = spec
        return self.load(spec.name, spec.version) if load else None

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load a known model version (the newest known one when ``version`` is None)."""
        spec = self.spec(name, version)
        key = (spec.name, spec.version)
        try:
            model = LoadedModel(spec)
        except RepositoryError as error:
            self._reasons[key] = str(error)
            raise
        with self._lock:
            self._loaded[key] = model
            self._reasons.pop(key, None)
            self._update_newest()
        return model

    def unload(self, name: str, version: str | None = None) -> list[str]:
        """Unload one version, or every version of ``name``; returns the versions unloaded."""
        with self._lock:
            keys = [k for k in self._loaded if k[0] == name and (version is None or k[1] == version)]
            if not keys and not any(k[0] == name for k in self._specs):
                raise RepositoryError(f"unknown model {name!r}", 404)
            for key in keys:
                self._loaded.pop(key)
                self._reasons[key] = "unloaded"
            self._update_newest()
        return [k[1] for k in keys]

    def spec(self, name: str, version: str | None = None) -> ModelSpec:
        with self._lock:
            versions = sorted(v for (n, v) in self._specs if n == name)
            if not versions:
                raise RepositoryError(f"unknown model {name!r}; POST /v2/repository/index lists the models", 404)
            if version is None:
                version = versions[-1]
            if (name, version) not in self._specs:
                raise RepositoryError(f"model {name!r} has no version {version!r} (versions: {versions})", 404)
            return self._specs[(name, version)]

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """A loaded model version, the newest loaded one when ``version`` is None."""
        if version is None:
            model = self._newest.get(name)  # replaced whole under the lock, read without it
            if model is not None:
                return model
        with self._lock:
            if version is None:
                loaded = sorted(v for (n, v) in self._loaded if n == name)
                if loaded:
                    return self._loaded[(name, loaded[-1])]
            elif (name, version) in self._loaded:
                return self._loaded[(name, version)]
        self.spec(name, version)  # unknown name or version: 404
        raise RepositoryError(f"model {name!r}" + (f" version {version!r}" if version else "")
                              + " is not loaded; POST /v2/repository/models/{name}/load loads it", 400)

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return sorted(v for (n, v) in self._specs if n == name)

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._loaded.values())

    def index(self) -> list[dict[str, Any]]:
        """The repository extension's index: every known version and its state."""
        with self._lock:
            rows = []
            for key in sorted(self._specs):
                row = {"name": key[0], "version": key[1], "state": "READY" if key in self._loaded else "UNAVAILABLE"}
                if key not in self._loaded:
                    row["reason"] = self._reasons.get(key, "not loaded")
                rows.append(row)
            return rows
