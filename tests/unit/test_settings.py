"""Settings come from the environment and flags; mistakes name the key."""

from __future__ import annotations

import pytest

from conveyor.errors import SettingsError
from conveyor.settings import Settings


def test_defaults_watch_every_namespace() -> None:
    settings = Settings.from_env({})
    assert settings.clusterwide and settings.port_http == 8080
    assert settings.image == "conveyor:0.1.0"


def test_environment_and_flags() -> None:
    env = {
        "CONVEYOR_NAMESPACES": "team-a, team-b",
        "CONVEYOR_PORT_HTTP": "9000",
        "KUBECONFIG": "/tmp/k",
    }
    settings = Settings.from_env(env, port_http=9100, log_level=None)
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.port_http == 9100  # the flag wins
    assert settings.kubeconfig == "/tmp/k"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"CONVEYOR_PORT_HTTP": "http"}, "CONVEYOR_PORT_HTTP"),
        ({"CONVEYOR_PORT_HTTP": "70000"}, "CONVEYOR_PORT_HTTP"),
        ({"CONVEYOR_RESYNC_SECONDS": "0"}, "CONVEYOR_RESYNC_SECONDS"),
        ({"CONVEYOR_LOG_LEVEL": "LOUD"}, "CONVEYOR_LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        Settings.from_env(env)


def test_leader_election_timings_must_nest() -> None:
    """A renew deadline beyond the lease time would let a lost leader reconcile beside the new."""
    with pytest.raises(SettingsError, match="CONVEYOR_LEASE_RENEW_DEADLINE_SECONDS"):
        Settings.from_env({"CONVEYOR_LEASE_RENEW_DEADLINE_SECONDS": "20"})
    settings = Settings.from_env(
        {"POD_NAME": "conveyor-operator-7c9-x2", "CONVEYOR_LEADER_ELECTION": "false"}
    )
    assert settings.pod_name == "conveyor-operator-7c9-x2" and not settings.leader_election
