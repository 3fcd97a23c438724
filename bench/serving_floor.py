"""The floor of bench/serving.py: the least a V2 server can do on this stack.

A raw ASGI app on uvicorn (uvloop, httptools) that parses the same V2 body Conveyor's server
gets (one tensor per input column), stacks the columns into a float matrix, runs the ONNX
estimator in onnxruntime and answers the labels — nothing else: no validation, no feature
transform, no request id, no metrics. Usage: python bench/serving_floor.py ONNX_FILE PORT
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnxruntime
import orjson
import uvicorn


def create_floor(onnx_file: str) -> Any:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    label = session.get_outputs()[0].name

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"].endswith("/ready"):
            answer = b"{}"
        else:
            document = orjson.loads(body)
            features = np.column_stack([i["data"] for i in document["inputs"]]).astype(np.float64)
            (labels,) = session.run([label], {input_name: features})
            answer = orjson.dumps({"outputs": [{"name": label, "data": labels.tolist()}]})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def main() -> None:
    onnx_file, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(
        create_floor(onnx_file),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
        proxy_headers=False,  # as conveyor serve: no middleware
    )


if __name__ == "__main__":
    main()
