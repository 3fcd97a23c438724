"""spec.gates.maxTrainingSeconds stops training, whatever catches errors on the way."""

from __future__ import annotations

import signal
import time

import pytest

from conveyor.jobs.train.deadline import deadline
from conveyor.jobs.train.errors import TrainingTimeExceeded


def _busy_fit_that_swallows_errors() -> None:
    """Like a search that treats a failing candidate as a failed trial: `except Exception`."""
    while True:
        try:
            sum(range(10_000))
        except Exception:  # what scikit-learn's error_score does
            continue


def test_the_deadline_stops_a_fit_that_catches_exceptions() -> None:
    with pytest.raises(TrainingTimeExceeded, match=r"maxTrainingSeconds \(0.2 s\)"), deadline(0.2):
        _busy_fit_that_swallows_errors()


def test_what_was_spent_before_counts() -> None:
    started = time.monotonic()
    with pytest.raises(TrainingTimeExceeded, match=r"\(5 s\)"), deadline(5, spent=4.9):
        _busy_fit_that_swallows_errors()
    assert time.monotonic() - started < 4  # 0.1 s were left, not 5


def test_the_timer_and_handler_that_were_there_are_given_back() -> None:
    # pytest-timeout keeps its own SIGALRM timer running around each test.
    handler, (before, _) = signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)
    with deadline(None):
        assert signal.getitimer(signal.ITIMER_REAL)[0] <= before
    with deadline(30):
        assert signal.getsignal(signal.SIGALRM) is not handler
    after, _ = signal.getitimer(signal.ITIMER_REAL)
    assert signal.getsignal(signal.SIGALRM) is handler
    assert (after > 0) == (before > 0) and after <= before
