"""One reconcile per kind: the spec and the observed world in, the desired status out.

These functions are pure: `handlers.py` gathers what they need to see and applies what they
return, so every decision here is testable without a cluster.
"""

from .common import Event, Outcome, status_patch
from .featureset import reconcile_featureset
from .modelversion import reconcile_modelversion
from .retrainpolicy import reconcile_retrainpolicy
from .trainingpipeline import reconcile_trainingpipeline

__all__ = [
    "Event",
    "Outcome",
    "reconcile_featureset",
    "reconcile_modelversion",
    "reconcile_retrainpolicy",
    "reconcile_trainingpipeline",
    "status_patch",
]
