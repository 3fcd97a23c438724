"""`conveyor serve` as a process: uvicorn (uvloop, httptools) runs the app at once, so the
liveness probe answers while a thread downloads, verifies, loads and warms up the model; the
app turns ready when the thread hands it the model, and the process ends with the loader's
outcome when it fails.

Shutdown on SIGTERM (or Ctrl-C), in three steps, so that no request is dropped:
1. drain: readiness answers 400 at once and each answer closes its connection, while the server
   goes on accepting and answering for `drain_seconds` — time for the Service's endpoints to
   drop the pod;
2. uvicorn stops listening and waits up to `grace_seconds` for the requests in flight;
3. the prediction log writes what it buffers (`LogWriter.close`);
4. the process exits 0 and reports `{"ok": true, ...}` with the log's figures: records
   written, dropped by reason.
A second signal skips the rest of the drain; a third, uvicorn's force exit.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn

from ..clients.s3 import ObjectStorage
from ..features.logwriter import LogWriter
from ..jobs.common import InvalidConfiguration, JobError
from .app import ServingApp, create_app
from .loading import load_served_model, load_shadow_model
from .model import ServedModel
from .recorder import Recorder
from .settings import ServeSettings

__all__ = ["DrainingServer", "serve", "uvicorn_config"]

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(settings: ServeSettings) -> dict[str, Any]:
    """Serve until SIGTERM; the report of a clean shutdown, or the loader's error raised."""
    logging.getLogger().setLevel(settings.log_level)
    with ObjectStorage(settings.s3) as storage:
        writer = log_writer(settings, storage)
        app = create_app(settings, recorder=recorder(settings, writer))
        server = DrainingServer(uvicorn_config(settings, app), app, settings.drain_seconds)
        loader = _Loader(settings, app, server)
        loader.start()
        writer.start()
        try:
            server.run()
        except SystemExit as error:  # uvicorn exits so when it cannot listen
            raise InvalidConfiguration(
                f"Cannot listen on {settings.host}:{settings.port} (exit {error.code}); see the "
                "log above, and check CONVEYOR_PORT_HTTP."
            ) from error
        finally:
            writer.close()
    if loader.error is not None:
        raise loader.error
    return {
        "model": settings.model,
        "version": settings.version,
        "stopped": "on a signal",
        "logs": writer.stats.to_json(),
    }


def log_writer(settings: ServeSettings, storage: ObjectStorage) -> LogWriter:
    """The writer of the server's prediction and feedback logs, in the Conveyor bucket."""
    logs = settings.logs
    return LogWriter(
        storage,
        settings.s3.bucket,
        namespace=logs.namespace,
        writer=logs.writer,
        max_records=logs.batch_records,
        max_age_seconds=logs.flush_seconds,
        max_buffered=logs.buffer_records,
    )


def recorder(settings: ServeSettings, writer: LogWriter) -> Recorder:
    ratio = settings.logs.sample_ratio if settings.logs.predictions else 0.0
    return Recorder(writer, settings.model, settings.version, sample_ratio=ratio)


def uvicorn_config(settings: ServeSettings, app: ServingApp) -> uvicorn.Config:
    """How `conveyor serve` runs uvicorn (a benchmark serving `create_app` should use it too):
    uvloop, httptools, no access log, no websockets."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,  # no log line per request on the hot path; /metrics counts them
        log_config=None,  # the program's logging, as configured by run_program
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=max(1, round(settings.grace_seconds)),
        server_header=False,
        proxy_headers=False,  # no middleware a request: the server never reads client addresses
    )


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with a drain before its shutdown and no signal re-raised after it."""

    def __init__(self, config: uvicorn.Config, app: ServingApp, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self._drain_until: float | None = None

    def stop(self) -> None:
        """Stop without draining (the model failed to load: there is nothing to drain)."""
        self.should_exit = True

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after its shutdown, which would end the process by
        # SIGTERM before it reports; here the process ends as the program decides.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
        elif self._drain_until is not None or self.drain_seconds <= 0:
            self.should_exit = True
        else:
            self._drain_until = time.monotonic() + self.drain_seconds
            self.app.drain()
            logger.info(
                "Received %s: not ready from now on; serving for %.1f s more, then finishing "
                "the requests in flight",
                signal.Signals(sig).name,
                self.drain_seconds,
            )

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


class _Loader(threading.Thread):
    """Loads the model beside the running server; hands it to the app or stops the server."""

    def __init__(self, settings: ServeSettings, app: ServingApp, server: DrainingServer) -> None:
        super().__init__(name="model-loader", daemon=True)
        self.settings = settings
        self.app = app
        self.server = server
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with ObjectStorage(self.settings.s3) as storage:
                model = load_served_model(self.settings, storage)
        except JobError as error:
            self.error = error
        except Exception as error:  # a bug: reported as InternalError by run_program
            logger.exception("Loading the model failed unexpectedly")
            self.error = error
        else:
            self.app.serve(model)
            if self.settings.shadow is not None:
                self._load_shadow(model)
            _freeze_heap()
            return
        self.server.stop()

    def _load_shadow(self, served: ServedModel) -> None:
        """The candidate beside the served version; one that cannot load is logged and left
        out (conveyor_serving_shadow_ready 0): the served version answers all the same."""
        shadow = self.settings.shadow
        assert shadow is not None and self.app.recorder is not None
        recorder = Recorder(
            self.app.recorder.writer, self.settings.model, shadow.version, sample_ratio=1.0
        )
        try:
            with ObjectStorage(self.settings.s3) as storage:
                model: ServedModel | None = load_shadow_model(self.settings, storage, served)
        except Exception as error:  # the candidate's failure is never the served version's
            logger.error("Shadow version %s is not served: %s", shadow.version, error)
            model = None
        self.app.shadow_with(model, recorder, shadow.share)


def _freeze_heap() -> None:
    """Leave what is loaded by now (modules, the model) out of every garbage collection, and
    collect the young less often: a request allocates a few hundred short-lived objects, and
    the collector otherwise ran every few requests. Measured: ~6% more single-row requests/s."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
