"""One reconcile per kind: the typed object and the observed world in, a Plan out.

Each kind's module has `parse_<kind>(body)` — the typed object, or `Invalid` with what to fix,
decided before anything is observed — and `reconcile_<kind>(obj, world) -> Plan`: the desired
status, the Events and the writes in order. These functions are pure: `handlers/` observes the
world and carries the plan out, so every decision here is testable without a cluster.
"""

from .common import Event, Invalid, Outcome, Plan, status_patch
from .featureset import parse_featureset, reconcile_featureset
from .modelversion import parse_modelversion, plan_deletion, reconcile_modelversion
from .retrainpolicy import parse_retrainpolicy, reconcile_retrainpolicy
from .trainingpipeline import parse_trainingpipeline, reconcile_trainingpipeline

__all__ = [
    "Event",
    "Invalid",
    "Outcome",
    "Plan",
    "parse_featureset",
    "parse_modelversion",
    "parse_retrainpolicy",
    "parse_trainingpipeline",
    "plan_deletion",
    "reconcile_featureset",
    "reconcile_modelversion",
    "reconcile_retrainpolicy",
    "reconcile_trainingpipeline",
    "status_patch",
]
