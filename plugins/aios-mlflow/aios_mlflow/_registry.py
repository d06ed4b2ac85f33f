"""Register a run's final ONNX model in the MLflow Model Registry, with the ONNX flavour and a signature."""

from __future__ import annotations

import logging
from typing import Any

from aios_core import RunDirectory

log = logging.getLogger("aios.mlflow")


def signature_of(model: Any) -> Any:
    """The MLflow signature of an AIOS ONNX classifier: a float32 batch (-1, features) in, probabilities out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    def spec(value: Any) -> Any:
        dims = [d.dim_value if d.dim_value > 0 else -1 for d in value.type.tensor_type.shape.dim]
        dims[0] = -1  # any batch size: AIOS exports a dynamic batch axis, a fixed one only for the batch it names
        return TensorSpec(np.dtype(np.float32), tuple(dims), value.name)

    return ModelSignature(inputs=Schema([spec(model.graph.input[0])]),
                          outputs=Schema([spec(output) for output in model.graph.output]))


def register_final_model(client: Any, run_id: str, rundir: RunDirectory, name: str) -> int | None:
    """Log the run's final ONNX model under the MLflow run (``model``) and register it as ``name``.

    Returns the new version number, or None when the run has no ONNX model (a framework without
    an ONNX export and no compressor); that is logged, not raised: the run itself is fine.
    """
    import mlflow
    import onnx

    artifact = rundir.final_artifact(formats=("onnx",))
    if artifact is None:
        log.warning("register: %s: the run has no ONNX model to register", rundir.path)
        return None
    mlflow.set_tracking_uri(client.tracking_uri)
    model = onnx.load(str(artifact.path))
    info = mlflow.onnx.log_model(model, name="model", run_id=run_id, registered_model_name=name,
                                 signature=signature_of(model), await_registration_for=60,
                                 save_as_external_data=False,
                                 tags={"aios.artifact": artifact.name, "aios.run_dir": str(rundir.path.resolve())})
    version = int(info.registered_model_version)
    client.set_model_version_tag(name, str(version), "aios.run_dir", str(rundir.path.resolve()))
    client.set_model_version_tag(name, str(version), "aios.artifact", artifact.name)
    return version
