"""Reading a training run's result.json, for every handler that needs it: the pipeline's (to
register a finished run's version) and the version's (to check that its run vouches for it)."""

from __future__ import annotations

import json

from ..clients.s3 import StorageError
from ..contracts.layouts import RunLayout
from ..contracts.results import RunResult
from ..errors import ClusterUnavailable
from .context import Context

__all__ = ["read_run_result", "run_layout"]


def run_layout(context: Context, namespace: str, model: str, run: str) -> RunLayout:
    return RunLayout(context.settings.s3_bucket, namespace, model, run)


def read_run_result(context: Context, layout: RunLayout) -> RunResult | None:
    """The run's result, or None while it does not exist; ValueError when it is not a run
    result. Kept once read: the run writes it last and never again."""

    def read() -> RunResult | None:
        try:
            storage = context.storage()
            if not storage.exists(layout.bucket, layout.result):
                return None
            document = json.loads(storage.get_bytes(layout.bucket, layout.result))
        except StorageError as error:
            raise ClusterUnavailable(
                f"Could not read the result of run {layout.run}: {error}", delay=10
            ) from error
        return RunResult.from_json(document, source=layout.uri(layout.result))

    return context.remember(("run-result", layout.bucket, layout.result), read)
