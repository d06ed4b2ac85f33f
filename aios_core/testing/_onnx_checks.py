"""The ONNX export as its consumers run it: the checks ``FrameworkContract`` makes on a framework's ``onnx`` files.

Downstream, nobody runs an ONNX file through the plugin that wrote it: evaluation,
``onnx-quant`` and the ``oip`` server load it with ONNX Runtime (``aios_core.onnx_session``),
feed their own batches to its one input and read its first output. So the file is
inspected here with ``onnx`` and run with that same session, never with the plugin's
predictor. onnx and onnxruntime are imported inside the functions: the kit imports
without them, and the checks skip, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from aios_core.records import ModelArtifact
from aios_core.testing._harness import check_probabilities, fail, fail_raised, identity, manager_with, predictor_for

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pluggy

    from aios_core.components import Framework
    from aios_core.records import Dataset

PARITY_ATOL = 1e-4
"""Largest difference between the ONNX and the native model's probabilities (the first-party exporters' own bound)."""
BATCH_ATOL = 1e-5
"""Largest difference between a row predicted alone and the same row predicted in a batch."""
ALONE_ROWS = 16
"""How many rows of the test split are predicted one at a time."""
DEFAULT_DOMAIN = "ai.onnx"

_EXPORTS = pytest.StashKey[dict]()


@dataclass(frozen=True)
class OnnxExport:
    """What the ``onnx_export`` fixture holds: one model for the data set, saved natively and exported to ONNX."""

    native: ModelArtifact
    """The model saved by ``aios_save_model`` (the reference the ONNX answers are compared with)."""
    onnx: ModelArtifact
    """The same model exported by ``aios_export_model(fmt="onnx")``."""
    plugin_manager: pluggy.PluginManager
    """Holds the framework alone, registered as a run registers it (it answers for the native file)."""


def onnx_export(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory, framework: Framework,
                dataset: Dataset, label: str) -> OnnxExport:
    """The framework's model for ``dataset``, saved and exported once per session and configuration.

    Skips when the framework declares no ``onnx`` export format or onnx / onnxruntime
    are not installed. A failing export fails every check that asks for it, with the
    same message, without exporting again.
    """
    if "onnx" not in getattr(framework, "export_formats", ()):
        pytest.skip(f"{label} declares no 'onnx' export format (export_formats {list(framework.export_formats)})")
    for module in ("onnx", "onnxruntime"):
        pytest.importorskip(module, reason=f"the ONNX checks of {label} inspect and run its export with {module}, "
                                           f"which is not installed: pip install {module}")
    key = (*identity(framework), dataset.content_hash)
    cache = config.stash.setdefault(_EXPORTS, {})
    if key not in cache:
        try:
            cache[key] = _export(framework, dataset, label, tmp_path_factory)
        except pytest.fail.Exception as failure:
            cache[key] = str(failure.msg)
    outcome = cache[key]
    if isinstance(outcome, str):
        fail(outcome)
    return outcome


def _export(framework: Framework, dataset: Dataset, label: str,
            tmp_path_factory: pytest.TempPathFactory) -> OnnxExport:
    from aios_core.context import RunContext

    pm = manager_with(framework)
    run = RunContext(name="contract-onnx", seed=0, threads=1, dir=tmp_path_factory.mktemp(f"aios-onnx-{framework.name}"),
                     stack={}, hook=pm.hook)
    model = pm.hook.aios_build_model(dataset=dataset, run=run, overrides={})
    if model is None:
        fail(f"aios_build_model of {label} returned None; it must return a model")
    native = artifact_of(pm.hook.aios_save_model(model=model, path=run.artifacts_dir / f"model.{framework.native_format}"),
                         framework.native_format, f"aios_save_model of {label}")
    try:
        exported = pm.hook.aios_export_model(model=model, fmt="onnx", path=run.artifacts_dir / "model.onnx",
                                             dataset=dataset)
    except Exception as error:
        fail_raised(f"aios_export_model of {label} (fmt='onnx') raised", error)
    return OnnxExport(native=native, onnx=artifact_of(exported, "onnx", f"aios_export_model of {label} (fmt='onnx')"),
                      plugin_manager=pm)


def artifact_of(artifact: Any, fmt: str, who: str) -> ModelArtifact:
    """``artifact`` if it is a ``ModelArtifact`` of ``fmt`` whose file exists, else a failure naming ``who``."""
    from pathlib import Path

    if not isinstance(artifact, ModelArtifact):
        fail(f"{who} returned {artifact!r}; it must return an aios_core.ModelArtifact")
    if artifact.format != fmt:
        fail(f"{who} returned an artifact of format {artifact.format!r}; expected {fmt!r}")
    if not Path(artifact.path).is_file():
        fail(f"{who} returned an artifact whose file {artifact.path} does not exist")
    return artifact


# ---------------------------------------------------------------- the file, as onnx reads it
def _graph(export: OnnxExport) -> Any:
    import onnx

    return onnx.load(str(export.onnx.path), load_external_data=False).graph


def _describe(value: Any) -> str:
    """An input or output as messages show it: ``'input' float32 (batch, 16)``."""
    import onnx

    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        return f"{value.name!r} ({value.type.WhichOneof('value')}, not a tensor)"
    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.FLOAT16: "float16"}
    dtype = names.get(tensor.elem_type) or onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    if not tensor.HasField("shape"):
        return f"{value.name!r} {dtype} of unknown rank"
    dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return f"{value.name!r} {dtype} ({', '.join(dims)})"


def checker_problem(export: OnnxExport) -> str | None:
    """What ``onnx.checker.check_model`` says about the file, or None."""
    import onnx

    try:
        onnx.checker.check_model(str(export.onnx.path))
    except Exception as error:  # ValidationError, or a protobuf error for a file that is not ONNX
        return f"{type(error).__name__}: {error}"
    return None


def duplicate_opsets(export: OnnxExport) -> dict[str, list[int]]:
    """Domains imported more than once (``''`` and ``'ai.onnx'`` are one domain), or the default domain missing."""
    import onnx

    versions: dict[str, list[int]] = {}
    for entry in onnx.load(str(export.onnx.path), load_external_data=False).opset_import:
        versions.setdefault(entry.domain or DEFAULT_DOMAIN, []).append(int(entry.version))
    problems = {domain: found for domain, found in versions.items() if len(found) > 1}
    if DEFAULT_DOMAIN not in versions:
        problems[DEFAULT_DOMAIN] = []
    return problems


def input_problems(export: OnnxExport, dataset: Dataset) -> list[str]:
    """Why the graph's inputs are not exactly one float32 (n, features) tensor with a symbolic batch dimension."""
    import onnx

    graph = _graph(export)
    initializers = {initializer.name for initializer in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        listed = ", ".join(_describe(value) for value in inputs) or "none"
        return [f"it has {len(inputs)} inputs ({listed}); expected exactly one"]
    value = inputs[0]
    tensor = value.type.tensor_type
    problems = []
    if not value.type.HasField("tensor_type") or tensor.elem_type != onnx.TensorProto.FLOAT:
        problems.append(f"its input is {_describe(value)}; expected float32 (cast inside the graph if the model "
                        "computes in another type)")
    dims = list(tensor.shape.dim) if tensor.HasField("shape") else None
    if dims is None or len(dims) != 2:
        problems.append(f"its input is {_describe(value)}; expected rank 2 (n, {dataset.num_features})")
        return problems
    if dims[0].HasField("dim_value"):
        problems.append(f"its input is {_describe(value)}: the batch dimension is fixed at {dims[0].dim_value}; "
                        "make it symbolic (torch.onnx.export(dynamic_shapes=...) or dynamic_axes={'input': {0: "
                        "'batch'}}; tf2onnx: an input_signature with shape (None, features))")
    if not (dims[1].HasField("dim_value") and dims[1].dim_value == dataset.num_features):
        problems.append(f"its input is {_describe(value)}; expected {dataset.num_features} features "
                        "(dataset.num_features) as a fixed second dimension")
    return problems


def output_problems(export: OnnxExport, dataset: Dataset, extra_outputs: tuple[str, ...]) -> list[str]:
    """Why the first output is not float32 (n, classes), or outputs beyond it are not the declared ones."""
    import onnx

    outputs = list(_graph(export).output)
    if not outputs:
        return ["it has no output"]
    first, problems = outputs[0], []
    tensor = first.type.tensor_type
    # the ONNX contract per task: probabilities (n, classes), or predictions (n, targets) named `predictions`
    regression = dataset.task == "regression"
    what, width = (("predictions", dataset.num_targets) if regression else ("class probabilities", dataset.num_classes))
    if not first.type.HasField("tensor_type") or tensor.elem_type != onnx.TensorProto.FLOAT:
        problems.append(f"its first output is {_describe(first)}; expected float32 {what}")
    if regression and first.name != "predictions":
        problems.append(f"its first output is {_describe(first)}; a regression model's output is named "
                        "'predictions' (oip answers with it by that name)")
    dims = list(tensor.shape.dim) if tensor.HasField("shape") else []
    if tensor.HasField("shape") and (len(dims) != 2 or (dims[1].HasField("dim_value")
                                                        and dims[1].dim_value != width)):
        problems.append(f"its first output is {_describe(first)}; expected (n, {width}), one "
                        f"{'value per target' if regression else 'probability per class'}")
    others = tuple(value.name for value in outputs[1:])
    if others != tuple(extra_outputs):
        declared = f"the test class declares onnx_extra_outputs {list(extra_outputs)}" if extra_outputs else \
            "the test class declares none (onnx_extra_outputs)"
        problems.append(f"its outputs are {', '.join(_describe(value) for value in outputs)}, and {declared}; "
                        "export the probabilities as the only output, or as the first, listing the others in "
                        "`onnx_extra_outputs` of the test class and in the plugin's documentation")
    return problems


# ---------------------------------------------------------------- the file, as ONNX Runtime runs it
def runtime_predictor(export: OnnxExport, label: str) -> Callable[[np.ndarray], np.ndarray]:
    """The first output of ``aios_core.onnx_session`` for a float32 batch: what evaluation, onnx-quant and oip read."""
    import numpy as np

    from aios_core.inference import onnx_session

    who = f"ONNX Runtime (aios_core.onnx_session, as evaluation, onnx-quant and oip run it) on {label}'s ONNX export"
    try:
        session = onnx_session(export.onnx.path, threads=1)
    except Exception as error:  # ONNX Runtime's own error says what it could not read; its traceback adds nothing
        fail(f"{who}: the model does not load: {type(error).__name__}: {error}")
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        feed = {input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        try:
            return session.run([output_name], feed)[0]
        except Exception as error:
            fail(f"{who}: running a float32 batch of shape {feed[input_name].shape} failed: "
                 f"{type(error).__name__}: {error}")

    return predict


def check_runtime_probabilities(export: OnnxExport, dataset: Dataset, label: str) -> np.ndarray:
    """ONNX Runtime's first output on ``dataset.x_test``: (n, classes) probabilities, or a failure."""
    return check_probabilities(runtime_predictor(export, label), dataset, f"{label}'s ONNX export, run by ONNX Runtime,")


def native_probabilities(export: OnnxExport, dataset: Dataset, label: str) -> np.ndarray:
    """The native predictor's probabilities on ``dataset.x_test`` (the reference)."""
    who = f"{label}'s saved model"
    return check_probabilities(predictor_for(export.plugin_manager, export.native, who), dataset, who)


def batch_differences(export: OnnxExport, dataset: Dataset, label: str) -> tuple[int, float]:
    """The row, of the first ``ALONE_ROWS`` test rows, whose prediction alone differs most from its prediction in
    the whole test batch, and by how much."""
    import numpy as np

    predict = runtime_predictor(export, label)
    rows = np.ascontiguousarray(dataset.x_test, dtype=np.float32)
    together = np.asarray(predict(rows))
    worst, where = 0.0, 0
    for index in range(min(ALONE_ROWS, len(rows))):
        alone = np.asarray(predict(rows[index:index + 1]))
        difference = float(np.max(np.abs(alone - together[index:index + 1]))) if alone.shape == (
            1, *together.shape[1:]) else float("inf")
        if difference > worst:
            worst, where = difference, index
    return where, worst
