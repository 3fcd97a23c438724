"""spec.gates.maxTrainingSeconds as a deadline on the training itself (search and refit).

An estimator's `fit` cannot be asked to stop, so the deadline is a timer signal: when it
fires, the handler raises `TimeUp` in the main thread between two Python steps of the fit
(scikit-learn grows forests and boosts stages in Python loops, so it stops within a tree or a
stage). `TimeUp` derives from BaseException so that nothing on the way — scikit-learn's
`error_score`, the search's "a failing candidate is a failed trial" — can take it for a
candidate's own error. `deadline()` turns it into the run's failure.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import TrainingTimeExceeded

__all__ = ["TimeUp", "deadline"]


class TimeUp(BaseException):
    """The training deadline passed (raised by the timer, caught by `deadline`)."""


def _expire(signum: int, frame: FrameType | None) -> None:
    raise TimeUp


@contextmanager
def deadline(limit: float | None, *, spent: float = 0.0) -> Iterator[None]:
    """Run the block within what is left of `limit` seconds (spec.gates.maxTrainingSeconds;
    no deadline when None) after `spent` went on training before it; else raise
    TrainingTimeExceeded."""
    if limit is None:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expire)
    started = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, max(limit - spent, 0.001))
    try:
        yield
    except TimeUp:
        raise TrainingTimeExceeded(limit) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:  # someone else's timer (a test runner's): give back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))
