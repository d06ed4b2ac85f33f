"""(d) KServe's Python model server (the ``kserve`` package) serving the same ONNX model over v2 REST.

    python kserve_server.py MODEL.onnx PORT     (run with a Python that has kserve installed)

The model follows KServe's documented custom-model pattern: ``load`` opens an ONNX
Runtime session, ``predict`` takes an ``InferRequest`` and returns an ``InferResponse``.
One worker, gRPC off, latency logging, access log and per-request trace lines off, so it does no
more work than it must.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:  # type: ignore[override]
        rows = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        probabilities = self.session.run([self.output], {self.input: rows})[0]
        output = InferOutput(name=self.output, shape=list(probabilities.shape), datatype="FP32", data=probabilities)
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[output])


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    server = ModelServer(http_port=int(sys.argv[2]), workers=1, enable_grpc=False, enable_latency_logging=False,
                         enable_docs_url=False)
    # ModelServer configures logging as it is built; its access log and per-request timing lines go on
    # although latency logging is off (kserve 0.21): quiet them, as aios-serve and the bare app log none
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([OnnxModel("model", sys.argv[1])])
