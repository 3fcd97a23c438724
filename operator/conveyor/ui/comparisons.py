"""Which versions to compare, read from the cluster and the store: the `Candidate`s of
`conveyor.training.comparison`.

A comparison is asked for by FeatureSet (every pipeline that trains on it), by pipeline, or by
ModelVersion name. Per pipeline it takes the newest version (what the last run produced) and
the Production one (what serves), or every version when asked. A card that cannot be read
still gives its version a row, with the reason: one missing file never hides the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..clients.kube import Kube
from ..clients.s3 import ObjectStorage
from ..errors import ConveyorError
from ..resources.kinds import FEATURESETS, MODEL_VERSIONS, TRAINING_PIPELINES
from ..training.comparison import Candidate
from .catalog import read_version_card

__all__ = ["candidate", "candidates_of", "comparison_candidates", "pick_versions"]


def comparison_candidates(
    kube: Kube,
    storage: ObjectStorage,
    namespace: str,
    *,
    featureset: str | None = None,
    pipelines: Sequence[str] = (),
    versions: Sequence[str] = (),
    every_version: bool = False,
) -> list[Candidate]:
    """The versions to compare, with their cards, by pipeline and version number.

    `featureset`: the pipelines that train on it; `pipelines`: those by name; `versions`:
    ModelVersions by name (any of them, combined). Per pipeline: its newest version and its
    Production version, or all of them with `every_version`. ConveyorError naming what is
    missing for an unknown FeatureSet, pipeline or version, or when there is nothing to compare.
    """
    if not (featureset or pipelines or versions):
        raise ConveyorError(
            "nothing to compare: name a FeatureSet, one or more TrainingPipelines, or ModelVersions"
        )
    chosen = _pipelines(kube, namespace, featureset, pipelines)
    items = kube.list(MODEL_VERSIONS, namespace) if chosen else []
    picked = pick_versions(items, chosen, every_version=every_version)
    picked += [_version(kube, namespace, name) for name in versions]
    unique = {item["metadata"]["name"]: item for item in picked}
    if not unique:
        where = f'FeatureSet "{featureset}"' if featureset else "the pipelines named"
        raise ConveyorError(
            f"nothing to compare: no ModelVersion of {', '.join(chosen)} ({where}) in namespace "
            f'"{namespace}" yet; a pipeline registers one when a training run succeeds '
            f"(kubectl get trainingpipelines -n {namespace})"
        )
    return candidates_of(storage, unique.values())


def candidates_of(storage: ObjectStorage, items: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    """These ModelVersions as Candidates, by pipeline and version number, with their cards."""
    return [candidate(item, read_version_card(storage, item)) for item in sorted(items, key=_order)]


def pick_versions(
    items: Iterable[Mapping[str, Any]], pipelines: Sequence[str], *, every_version: bool = False
) -> list[Mapping[str, Any]]:
    """Of the ModelVersions `items`, those of `pipelines` to compare: per pipeline the newest
    and the Production one (status.stage or spec.stage), or every one."""
    by_pipeline: dict[str, list[Mapping[str, Any]]] = {name: [] for name in pipelines}
    for item in items:
        pipeline = _pipeline_of(item)
        if pipeline in by_pipeline:
            by_pipeline[pipeline].append(item)
    picked: list[Mapping[str, Any]] = []
    for found in by_pipeline.values():
        if every_version:
            picked += found
            continue
        newest = max(found, key=_number, default=None)
        production = [item for item in found if "Production" in _stages(item)]
        picked += [item for item in found if item is newest or item in production]
    return picked


def candidate(item: Mapping[str, Any], card: tuple[Mapping[str, Any], str | None]) -> Candidate:
    """A ModelVersion and its card (read_version_card's answer) as a comparison's Candidate."""
    spec, status = item.get("spec") or {}, item.get("status") or {}
    body, problem = card
    return Candidate(
        name=str(item["metadata"]["name"]),
        namespace=str(item["metadata"].get("namespace", "")),
        pipeline=_pipeline_of(item) or str(body.get("pipeline", "")),
        model=str(spec.get("model", "")),
        version=_number(item),
        stage=str(status.get("stage") or spec.get("stage") or ""),
        card=body,
        live=status.get("liveMetrics"),
        report_uri=(spec.get("artifact") or {}).get("reportUri"),
        problem=problem,
    )


# --- reading the cluster ---------------------------------------------------------------------


def _pipelines(
    kube: Kube, namespace: str, featureset: str | None, names: Sequence[str]
) -> list[str]:
    """The pipelines to compare: those on `featureset` and those named, each checked."""
    chosen: list[str] = []
    if featureset:
        if kube.get(FEATURESETS, namespace, featureset) is None:
            raise ConveyorError(f'FeatureSet "{featureset}" not found in namespace "{namespace}"')
        on_it = [
            item["metadata"]["name"]
            for item in kube.list(TRAINING_PIPELINES, namespace)
            if (item.get("spec") or {}).get("featureSet") == featureset
        ]
        if not on_it:
            raise ConveyorError(
                f'no TrainingPipeline in namespace "{namespace}" trains on FeatureSet '
                f'"{featureset}"; nothing to compare'
            )
        chosen += sorted(on_it)
    for name in names:
        if kube.get(TRAINING_PIPELINES, namespace, name) is None:
            raise ConveyorError(f'TrainingPipeline "{name}" not found in namespace "{namespace}"')
        chosen.append(name)
    return list(dict.fromkeys(chosen))


def _version(kube: Kube, namespace: str, name: str) -> Mapping[str, Any]:
    body = kube.get(MODEL_VERSIONS, namespace, name)
    if body is None:
        raise ConveyorError(f'ModelVersion "{name}" not found in namespace "{namespace}"')
    return body


def _pipeline_of(item: Mapping[str, Any]) -> str:
    return str(((item.get("spec") or {}).get("lineage") or {}).get("pipeline", ""))


def _number(item: Mapping[str, Any]) -> int:
    return int((item.get("spec") or {}).get("version") or 0)


def _stages(item: Mapping[str, Any]) -> set[str]:
    """The stage served (status) and the stage asked for (spec)."""
    stages = ((item.get("status") or {}).get("stage"), (item.get("spec") or {}).get("stage"))
    return {str(stage) for stage in stages if stage}


def _order(item: Mapping[str, Any]) -> tuple[str, int, str]:
    return (_pipeline_of(item), _number(item), str(item["metadata"]["name"]))
