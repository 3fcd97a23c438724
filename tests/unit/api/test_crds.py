"""The committed CRDs are exactly what the models generate, and they are structural."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.api.crd import render_crds
from conveyor.api.v1alpha1 import KINDS
from tests.conftest import CRDS, load_yaml_documents


@pytest.mark.parametrize(
    "directory", [CRDS, CRDS.parent / "manifests" / "crd" / "bases"], ids=["crds", "manifests"]
)
def test_committed_crds_match_the_models(directory: Any) -> None:
    rendered = render_crds()
    committed = {path.name: path.read_text() for path in directory.glob("*.yaml")}
    assert set(committed) == set(rendered), "run `make crds`: the set of CRD files differs"
    for name, text in rendered.items():
        assert committed[name] == text, f"{directory.name}/{name} is stale: run `make crds`"


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for key, child in (node.get("properties") or {}).items():
        found += _walk(child, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _walk(node[key], f"{path}[]")
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.kind_name)
def test_schema_is_structural_and_documented(kind: Any) -> None:
    crd = load_yaml_documents(CRDS / f"conveyor.dev_{kind.plural}.yaml")[0]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node, path
        assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields"), (
            f"{path} has no type"
        )
        if path.startswith((".spec.", ".status.")) and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description"
    for path, node in _walk(schema["properties"]["status"]):
        assert "default" not in node, f"status{path} must not have a default"


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.kind_name)
def test_crd_names_columns_and_status_subresource(kind: Any) -> None:
    crd = load_yaml_documents(CRDS / f"conveyor.dev_{kind.plural}.yaml")[0]
    names = crd["spec"]["names"]
    assert names["categories"] == ["conveyor"]
    assert names["shortNames"] == list(kind.short_names)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [column["name"] for column in version["additionalPrinterColumns"]]
    assert columns[-1] == "Age"


def test_pipeline_columns_answer_the_first_questions() -> None:
    crd = load_yaml_documents(CRDS / "conveyor.dev_trainingpipelines.yaml")[0]
    columns = {
        c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns["FeatureSet"] == ".spec.featureSet"
    assert columns["Model"] == ".spec.model.name"
    assert columns["Last Run"] == ".status.runs[0].phase"
    assert columns["Production"] == ".status.productionVersion"


def test_nested_objects_default_to_empty_so_inner_defaults_apply() -> None:
    crd = load_yaml_documents(CRDS / "conveyor.dev_trainingpipelines.yaml")[0]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["split"]["default"] == {}
    assert spec["properties"]["split"]["properties"]["testSize"]["default"] == 0.2
    test_size = spec["properties"]["split"]["properties"]["testSize"]
    assert test_size["exclusiveMinimum"] is True and test_size["minimum"] == 0


def test_api_reference_matches_the_models() -> None:
    from conveyor.api.reference import render_reference

    committed = (CRDS.parent / "docs" / "api.md").read_text()
    assert committed == render_reference(), "docs/api.md is stale: run `make crds`"


def _rules(node: dict[str, Any]) -> list[str]:
    found = [rule["rule"] for rule in node.get("x-kubernetes-validations") or []]
    found += [
        rule["messageExpression"]
        for rule in node.get("x-kubernetes-validations") or []
        if "messageExpression" in rule
    ]
    for child in (node.get("properties") or {}).values():
        found += _rules(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _rules(node[key])
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.kind_name)
def test_validation_rules_compile(kind: Any) -> None:
    from conveyor.sandbox.apiserver.cel import compile_expression

    crd = load_yaml_documents(CRDS / f"conveyor.dev_{kind.plural}.yaml")[0]
    for expression in _rules(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]):
        compile_expression(expression)
