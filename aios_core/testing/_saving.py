"""Saving as a run relies on it: the trained weights survive ``aios_save_model`` and ``aios_load_model``, and
loading a native file runs no code from it. Used by ``FrameworkContract``."""

from __future__ import annotations

import importlib.util
import pathlib
import pickle
import zipfile
from typing import TYPE_CHECKING, Any

import pytest

from aios_core.records import ModelArtifact
from aios_core.testing._harness import check_probabilities, fail, fail_raised, predictor_for
from aios_core.testing._onnx_checks import PARITY_ATOL, artifact_of

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pluggy

    from aios_core.components import Framework
    from aios_core.context import RunContext
    from aios_core.records import Dataset

RELOAD_ATOL = 1e-6
"""Largest difference between the predictions of a native file and of the same model loaded and saved again."""


# ---------------------------------------------------------------- trained weights survive a save and a load
def check_trained_weights_survive(pm: pluggy.PluginManager, framework: Framework, untrained: Any, trained: Any,
                                  dataset: Dataset, run: RunContext, label: str) -> None:
    """The trained model, saved, loaded and saved again, predicts as the trained model in memory.

    The model in memory has no predictor of its own, so three comparisons stand in for one:

    1. the trained model's file predicts as the file of that model loaded and saved
       again (a load that draws weights anew, unseeded, fails);
    2. the trained model's file predicts differently from the untrained model's file,
       written by the same save (a save of the architecture alone, re-initialised on
       load with any fixed seed, gives both files the same predictions and fails);
    3. if the framework exports a format a registered component predicts (``onnx`` runs in
       the kernel), the export reads the model in memory without its native file: when
       the export of the untrained model answers as its native file, the export of the
       trained model must answer as the trained file loaded and saved again (a save that
       loses part of the weights, e.g. the biases, fails). An export that answers unlike
       its native file is reported by the ONNX checks; this comparison is then left out.
    """
    import numpy as np

    fmt = framework.native_format
    advice = ("aios_save_model must write the trained weights, and aios_load_model restore them rather than build "
              "the architecture anew")
    saved = _save(pm, trained, run.artifacts_dir / f"trained.{fmt}", fmt, label)
    first = _predict(pm, saved, dataset, f"{label}'s saved trained model")
    loaded = pm.hook.aios_load_model(artifact=saved)
    if loaded is None:
        fail(f"aios_load_model of {label} returned None for its own file {saved.path}")
    who = f"{label}'s trained model, saved, loaded and saved again"
    after = _predict(pm, _save(pm, loaded, run.artifacts_dir / f"reloaded.{fmt}", fmt, label), dataset, who)
    if not np.allclose(first, after, rtol=0.0, atol=RELOAD_ATOL):
        fail(f"{who} predicts differently from the file first saved (max difference "
             f"{np.max(np.abs(first - after)):.3g}); {advice}")
    before = _predict(pm, _save(pm, untrained, run.artifacts_dir / f"untrained.{fmt}", fmt, label), dataset,
                      f"{label}'s saved untrained model")
    if np.allclose(first, before, rtol=0.0, atol=RELOAD_ATOL):
        fail(f"{label}'s trained model, saved, predicts exactly as the untrained model saved the same way, although "
             f"training changed it; {advice}")
    for fmt_out in getattr(framework, "export_formats", ()):
        untrained_export = _export_predictions(pm, framework, untrained, fmt_out, dataset, run, label, "untrained")
        if untrained_export is None:
            continue
        if float(np.max(np.abs(untrained_export - before))) > PARITY_ATOL:
            return
        memory = _export_predictions(pm, framework, trained, fmt_out, dataset, run, label, "trained")
        difference = float(np.max(np.abs(after - memory)))
        if difference > PARITY_ATOL:
            fail(f"{who} predicts differently from the trained model in memory (read through its {fmt_out} export, "
                 f"which answers as the native file for the untrained model): max difference {difference:.3g} in "
                 f"probability (allowed {PARITY_ATOL:g}); {advice}, all of them")
        return


def _save(pm: pluggy.PluginManager, model: Any, path: Path, fmt: str, label: str) -> ModelArtifact:
    return artifact_of(pm.hook.aios_save_model(model=model, path=path), fmt, f"aios_save_model of {label}")


def _predict(pm: pluggy.PluginManager, artifact: ModelArtifact, dataset: Dataset, who: str) -> np.ndarray:
    return check_probabilities(predictor_for(pm, artifact, who), dataset, who)


def _export_predictions(pm: pluggy.PluginManager, framework: Framework, model: Any, fmt: str, dataset: Dataset,
                        run: RunContext, label: str, state: str) -> np.ndarray | None:
    """Probabilities of ``model`` through its ``fmt`` export, or None if no registered component predicts them."""
    if fmt == "onnx" and not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")):
        return None
    who = f"aios_export_model of {label} (fmt={fmt!r}) on the {state} model"
    try:
        exported = pm.hook.aios_export_model(model=model, fmt=fmt, path=run.artifacts_dir / f"{state}-export.{fmt}",
                                             dataset=dataset)
    except Exception as error:
        fail_raised(f"{who} raised", error)
    predict = pm.hook.aios_load_predictor(artifact=artifact_of(exported, fmt, who), threads=1)
    if predict is None:
        return None
    try:
        return check_probabilities(predict, dataset, f"{label}'s {fmt} export of the {state} model")
    except (pytest.fail.Exception, Exception):  # an export that does not answer is the export checks' to report
        return None


# ---------------------------------------------------------------- loading runs no code
class _Touch:
    """Unpickling it creates ``marker``: a harmless stand-in for the code a malicious model file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return pathlib.Path.touch, (self.marker,)


WRAPPINGS = {
    "pickle": "a plain pickle",
    "zip": "a zip archive holding archive/data.pkl (torch's file layout)",
}
"""The code-running files the check writes at the native format's path, and how messages name them."""


def write_code_running_file(path: Path, marker: Path, wrapping: str) -> None:
    """Write at ``path`` a pickle that creates ``marker`` when unpickled, plain or inside a torch-style zip."""
    payload = pickle.dumps(_Touch(marker), protocol=2)
    if wrapping == "pickle":
        path.write_bytes(payload)
        return
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")


def check_load_runs_no_code(pm: pluggy.PluginManager, framework: Framework, directory: Path, wrapping: str,
                            label: str) -> None:
    """``aios_load_model`` on a code-running file at ``model.<native_format>`` raises or returns None, running nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    marker, path = directory / "code-ran", directory / f"model.{framework.native_format}"
    write_code_running_file(path, marker, wrapping)
    artifact = ModelArtifact(name="native", path=path, format=framework.native_format, producer="aios_core.testing")
    try:
        loaded = pm.hook.aios_load_model(artifact=artifact)
    except Exception:  # refusing the file is what is asked
        loaded = None
    what = f"{WRAPPINGS[wrapping]} written at {path}"
    if marker.exists():
        fail(f"aios_load_model of {label} ran code from the file: given {what}, it unpickled it and the pickle "
             f"created {marker}. A model file someone shares could run anything the same way; read native files "
             "with a loader that runs no code (torch.load(weights_only=True), keras.saving.load_model("
             "safe_mode=True), numpy.load(allow_pickle=False), safetensors), never pickle.load")
    if loaded is not None:
        fail(f"aios_load_model of {label} returned {type(loaded).__name__} given {what}, which holds no model; "
             "refuse a file that is not a model of yours: raise a ValueError saying so (or return None)")
