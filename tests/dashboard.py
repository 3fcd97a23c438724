"""The PromQL of manifests/monitoring/, read for the tests that parse it with promtool
(tests/unit/test_monitoring_manifests.py) and run it against the sandbox's Prometheus
(tests/integration/test_monitoring.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MONITORING = Path(__file__).resolve().parents[1] / "manifests" / "monitoring"
DASHBOARD = MONITORING / "dashboard.json"
RULES = MONITORING / "rules.yaml"

MONITOR_METRICS = (
    "conveyor_model_live_score",
    "conveyor_model_labelled_samples",
    "conveyor_model_feature_drift",
)
"""The monitor's gauges, on the operator's /metrics (issue 10, part 2)."""

# Grafana's variables: the dashboard's own and the built-in ones its queries use.
ANY = {"namespace": ".*", "model": ".*", "drift_method": "psi"}
BUILTINS = {"__rate_interval": "1m", "__range": "1h"}
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


@dataclass(frozen=True)
class Query:
    where: str
    """The panel and refId (or variable) it comes from."""
    expr: str
    """As in the dashboard, with Grafana's variables."""

    @property
    def monitor(self) -> bool:
        """Whether it reads the monitor's gauges (they need feedback and the monitor)."""
        return any(name in self.expr for name in MONITOR_METRICS)

    def promql(self, values: dict[str, str] = ANY) -> str:
        """The expression with every variable replaced; an unknown variable is an error."""
        known = {**BUILTINS, **values}

        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in known:
                raise KeyError(f"{self.where} uses ${name}, which the tests do not know")
            return known[name]

        return _VARIABLE.sub(value, self.expr)


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def dashboard_queries(dashboard: dict[str, Any] | None = None) -> list[Query]:
    """Every panel target's expression, then the selectors of the label_values() variables."""
    dashboard = dashboard or load_dashboard()
    queries = [
        Query(f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        matched = _LABEL_VALUES.match(variable["query"]["query"])
        assert matched, f"variable {variable['name']}: expected label_values(selector, label)"
        queries.append(Query(f"variable {variable['name']!r}", matched.group(1)))
    return queries


def rule_queries() -> list[Query]:
    rules = yaml.safe_load(RULES.read_text())
    return [
        Query(f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]
