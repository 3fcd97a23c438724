"""Translating a container spec into a process: image, argv, environment, quantities."""

import base64

import pytest

from conveyor.sandbox.nodeagent.containers import (
    ContainerConfigError,
    expand_references,
    image_matches,
    map_argv,
    parse_memory_quantity,
    resolve_env,
)

POD = {
    "metadata": {
        "name": "train-abcde",
        "namespace": "ml",
        "uid": "u-1",
        "labels": {"app": "iris"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "2"},
    },
    "spec": {},
}
SECRETS = {("Secret", "ml", "s3"): {"key": base64.b64encode(b"s3cret").decode()}}
CONFIGMAPS = {("ConfigMap", "ml", "settings"): {"LEVEL": "debug", "MODE": "fast"}}


def lookup(kind, namespace, name):
    if kind == "Secret" and (kind, namespace, name) in SECRETS:
        return {k: base64.b64decode(v).decode() for k, v in SECRETS[kind, namespace, name].items()}
    return CONFIGMAPS.get((kind, namespace, name))


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("conveyor:0.1.0", True),
        ("conveyor", True),
        ("conveyor:latest", True),
        ("conveyor@sha256:abc", True),
        ("ghcr.io/x/conveyor:0.2", False),
        ("python:3.11", False),
    ],
)
def test_the_conveyor_image_matches_whatever_its_tag(image, expected):
    assert image_matches(image, "conveyor:0.1.0") is expected


def test_a_registry_port_is_not_taken_for_a_tag():
    assert image_matches("localhost:5000/conveyor:1", "localhost:5000/conveyor:dev")
    assert not image_matches("localhost:5001/conveyor:1", "localhost:5000/conveyor:dev")


def test_an_empty_command_runs_the_image_entrypoint_through_the_map():
    mapping = {"conveyor": ["/venv/bin/python", "-m", "conveyor"]}
    assert map_argv(None, ["train", "--run", "r1"], mapping) == [
        "/venv/bin/python",
        "-m",
        "conveyor",
        "train",
        "--run",
        "r1",
    ]
    assert map_argv(["echo"], ["hi"], mapping) == ["echo", "hi"]


def test_references_expand_like_kubernetes():
    variables = {"NAME": "iris", "EMPTY": ""}
    assert expand_references("model-$(NAME)", variables) == "model-iris"
    assert expand_references("$(MISSING) stays", variables) == "$(MISSING) stays"
    assert expand_references("$$(NAME) is escaped", variables) == "$(NAME) is escaped"
    assert expand_references("[$(EMPTY)]", variables) == "[]"


def test_env_composes_base_envfrom_env_and_field_refs():
    container = {
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "BUCKET", "value": "models"},
            {"name": "URI", "value": "s3://$(BUCKET)/$(CFG_MODE)"},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "key"}}},
            {
                "name": "LEVEL",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}},
            },
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "INDEX",
                "valueFrom": {
                    "fieldRef": {
                        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                    }
                },
            },
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
    }
    env = resolve_env(container, POD, lookup, {"HOME": "/w"})
    assert env == {
        "HOME": "/w",
        "CFG_LEVEL": "debug",
        "CFG_MODE": "fast",
        "BUCKET": "models",
        "URI": "s3://models/fast",
        "KEY": "s3cret",
        "LEVEL": "debug",
        "POD": "train-abcde",
        "APP": "iris",
        "INDEX": "2",
        "IP": "127.0.0.1",
    }


def test_a_missing_secret_names_the_secret():
    ref = {"secretKeyRef": {"name": "nope", "key": "k"}}
    container = {"env": [{"name": "K", "valueFrom": ref}]}
    with pytest.raises(ContainerConfigError, match='secret "nope" not found'):
        resolve_env(container, POD, lookup)


def test_a_missing_key_names_the_key_and_the_secret():
    container = {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "x"}}}]}
    with pytest.raises(ContainerConfigError, match="couldn't find key x in Secret ml/s3"):
        resolve_env(container, POD, lookup)


def test_optional_references_may_be_missing():
    container = {
        "envFrom": [{"secretRef": {"name": "nope", "optional": True}}],
        "env": [
            {
                "name": "K",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
            }
        ],
    }
    assert resolve_env(container, POD, lookup) == {}


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("256Mi", 256 * 2**20),
        ("1Gi", 2**30),
        ("1G", 10**9),
        ("500k", 500_000),
        ("1e6", 10**6),
        (1024, 1024),
    ],
)
def test_memory_quantities(quantity, expected):
    assert parse_memory_quantity(quantity) == expected


def test_a_bad_quantity_says_what_is_expected():
    with pytest.raises(ValueError, match=r"expected e\.g\. 256Mi"):
        parse_memory_quantity("lots")
