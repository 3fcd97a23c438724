"""conveyor.dev/v1alpha1: FeatureSet, TrainingPipeline, ModelVersion, RetrainPolicy."""

from .common import API_VERSION, GROUP, VERSION, Condition, CustomResource
from .featureset import FeatureSet, FeatureSetSpec, FeatureSetStatus
from .modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus
from .retrainpolicy import RetrainPolicy, RetrainPolicySpec, RetrainPolicyStatus
from .trainingpipeline import TrainingPipeline, TrainingPipelineSpec, TrainingPipelineStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "Condition",
    "CustomResource",
    "FeatureSet",
    "FeatureSetSpec",
    "FeatureSetStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "RetrainPolicy",
    "RetrainPolicySpec",
    "RetrainPolicyStatus",
    "TrainingPipeline",
    "TrainingPipelineSpec",
    "TrainingPipelineStatus",
]

# Every kind, in the order of the loop.
KINDS: tuple[type[CustomResource], ...] = (
    FeatureSet,
    TrainingPipeline,
    ModelVersion,
    RetrainPolicy,
)
