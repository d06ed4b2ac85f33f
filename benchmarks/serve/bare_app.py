"""(c) The ceiling for HTTP: a bare ASGI app calling ONNX Runtime directly, no framework, no checks.

    python bare_app.py MODEL.onnx PORT      (uvicorn, same settings as aios-serve)

It answers POST /v2/models/<any>/infer with the Open Inference Protocol's JSON, running
ONNX Runtime inline in the event loop: the least work an HTTP server can do per request.
It uses the same JSON library as aios-serve (orjson), so the comparison is of everything else.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
INPUT, OUTPUT = session.get_inputs()[0].name, session.get_outputs()[0].name


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    tensor = orjson.loads(body)["inputs"][0]
    rows = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    probabilities = session.run([OUTPUT], {INPUT: rows})[0]
    answer = orjson.dumps({"model_name": "bare", "outputs": [{"name": OUTPUT, "datatype": "FP32",
                           "shape": list(probabilities.shape), "data": probabilities.ravel()}]},
                          option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
                server_header=False, date_header=False)
