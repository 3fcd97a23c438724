"""`conveyor serve`: the model server (see app.py for its endpoints, protocol.py for what it
takes, loading.py for how a version becomes ready, server.py for its process and shutdown).

The module tree is light on purpose: `conveyor --help` must not import uvicorn or onnxruntime.
"""

from __future__ import annotations

__all__: list[str] = []
