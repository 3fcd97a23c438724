"""`conveyor sandbox up`: everything Conveyor needs, on one machine, without a cluster.

Starts, in order: the API emulator (with the CRDs and the admission policies of
manifests/admission installed), the S3 server (buckets, credentials Secret, the examples' raw
data), the node agent, the operator — unchanged, as its own process — and Prometheus with
Alertmanager when they are installed. Stops them in reverse order. A development tool, not a
Kubernetes.

Who is who: people (kubectl, the CLI, tests) use `kubeconfig`, a cluster admin; the operator
uses `operator_kubeconfig`, its ServiceAccount's identity; the node agent has its own. There is
no RBAC: identities only let the admission policies tell the operator from a person.

What runs as a process of its own (S3, the operator, Prometheus, Alertmanager) is supervised as
a Deployment's pod would be (`supervisor.py`): a crash is reported and restarted with the
kubelet's CrashLoopBackOff. The API emulator and the node agent are threads of this process:
if they die, so has the sandbox, and there is nothing left to restart them from.
`.sandbox/status.json` says what runs, for `conveyor sandbox status`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import shlex
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import (
    AdmissionregistrationV1Api,
    ApiClient,
    ApiException,
    ApiextensionsV1Api,
    CoreV1Api,
)

from ..api.crd import render_crds
from ..clients.kube import load_api_client
from ..settings import ALLOCATOR_ENV, DEFAULT_IMAGE
from .apiserver import ApiServerThread, UserInfo, service_account, write_kubeconfig
from .datasets import seed_datasets
from .faults import ApiFaults
from .monitoring import Monitoring, ScrapeTarget, quickened_rules
from .nodeagent import NodeAgent
from .nodeagent.ports import PORTS_ANNOTATION
from .objectstore import ObjectStore
from .operators import OPERATOR_ARGV, OperatorReplicas
from .processes import ManagedProcess, free_port
from .s3faults import S3FaultProxy
from .status import SandboxStatus, process_start_ticks, remove_status, write_status
from .supervisor import BackOff, ComponentStatus, Supervised

__all__ = ["OPERATOR_ARGV", "PROJECT_ROOT", "Sandbox", "SandboxConfig"]

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
BUCKETS = ("conveyor", "conveyor-raw")
S3_SECRET = "conveyor-s3-credentials"
WEBHOOK_SECRET = "conveyor-webhook-token"
ADMIN = UserInfo("sandbox-admin", ("system:masters", "system:authenticated"))
NODE_AGENT = UserInfo("system:node:sandbox", ("system:nodes", "system:authenticated"))
OPERATOR_SERVICE_ACCOUNT = "conveyor-operator"  # manifests/rbac/service_account.yaml
READY = range(200, 300)


@dataclass
class SandboxConfig:
    state_dir: Path = Path(".sandbox")
    image: str = DEFAULT_IMAGE
    namespace: str = "default"
    operator_namespace: str = "conveyor-system"
    crds_dir: Path | None = None
    """Install the CRDs from here; default: the project's crds/, else generated from the models."""
    s3_backend: str = "auto"
    monitoring: bool = True
    resync_seconds: float = 10.0
    monitor_interval_seconds: float = 5.0
    """The live-quality monitor's interval: seconds here, where a cluster's default is 30."""
    prometheus_interval: str = "5s"
    """Prometheus's scrape and rule-evaluation interval."""
    policy_interval_seconds: float = 1.0
    """How often RetrainPolicies are evaluated (a cluster's default is 10)."""
    operator_log_level: str = "INFO"
    extra_operator_env: dict[str, str] = field(default_factory=dict)
    admission_policies: bool = True
    """Install manifests/admission (the registry's guards); False leaves the registry open."""
    operator: bool = True
    """Start the operator; without it, run it yourself with `.sandbox/operator.env`."""
    operator_replicas: int = 1
    """Operator processes; more than one compete for the leader-election Lease and only its
    holder reconciles (the manifests' Deployment runs two)."""
    restart_backoff_seconds: float = 10.0
    """A crashed process restarts at once, then after this, doubled per crash in a row."""
    restart_backoff_cap_seconds: float = 300.0
    restart_backoff_reset_seconds: float = 600.0
    """A process that ran this long before it crashed starts its back-off afresh."""
    s3_fault_proxy: bool = False
    """Put `Sandbox.s3_faults` between the operator (and its pods) and S3, so a test can make
    S3 fail (tests/faults/); people and tests still reach S3 directly."""

    def backoff(self) -> BackOff:
        return BackOff(
            base=self.restart_backoff_seconds,
            cap=self.restart_backoff_cap_seconds,
            reset_after=self.restart_backoff_reset_seconds,
        )


class Sandbox:
    """The running sandbox; use as a context manager, or start() and stop()."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.state_dir = self.config.state_dir.resolve()
        self.log_dir = self.state_dir / "logs"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.operator_kubeconfig = self.state_dir / "operator-kubeconfig"
        self._node_agent_kubeconfig = self.state_dir / "node-agent-kubeconfig"
        self._tokens = {
            secrets.token_urlsafe(24): ADMIN,
            secrets.token_urlsafe(24): self.operator_identity,
            secrets.token_urlsafe(24): NODE_AGENT,
        }
        self.webhook_token = secrets.token_urlsafe(24)
        self.operator_port = free_port()
        self.notices: list[str] = []
        self._stack = contextlib.ExitStack()
        self._api: ApiServerThread | None = None
        self._store: ObjectStore | None = None
        self.operators = OperatorReplicas(
            self.config.operator_replicas, self.log_dir, self.operator_port
        )
        self._monitoring: Monitoring | None = None
        self._stop_targets = threading.Event()
        self._supervised: list[Supervised] = []
        self._status_lock = threading.Lock()
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.operator_env: dict[str, str] = {}
        """What the sandbox sets for its operator on top of the inherited environment."""
        self.api_faults = ApiFaults(self.operator_identity.username)
        """Errors and cut watches for the operator's requests, off until switched on."""
        self.s3_faults: S3FaultProxy | None = None
        """With `s3_fault_proxy`: the operator's way to S3, failing on demand."""
        self.node_agent: NodeAgent | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stack.callback(remove_status, self.state_dir)  # closed last: no sandbox runs
        api = ApiServerThread(log_dir=self.log_dir, tokens=self._tokens)
        self._api = self._stack.enter_context(api)
        assert api.server is not None
        api.server.emulator.faults = self.api_faults.intercept
        self._write_kubeconfigs(self._api.url)
        client = self._stack.enter_context(load_api_client(str(self.kubeconfig)))
        self._install_crds(client)
        self._ensure_namespace(client, self.config.operator_namespace)
        if self.config.admission_policies:
            self._install_admission_policies(client)
        self._start_object_store(client)
        self._start_node_agent()
        self._start_operator()
        self._start_monitoring(client)
        self._write_env_file()
        self._write_operator_env_file()
        self._write_status()

    def stop(self) -> None:
        """Stop everything that started, newest first; safe to call twice."""
        self._stop_targets.set()
        self._stack.close()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- parts -------------------------------------------------------------------------------

    @property
    def operator_identity(self) -> UserInfo:
        """The operator's ServiceAccount, as a cluster's token for it would name it."""
        return service_account(self.config.operator_namespace, OPERATOR_SERVICE_ACCOUNT)

    def _write_kubeconfigs(self, url: str) -> None:
        token = {user: value for value, user in self._tokens.items()}
        namespace = self.config.namespace
        write_kubeconfig(self.kubeconfig, url, namespace=namespace, token=token[ADMIN])
        operator = token[self.operator_identity]
        write_kubeconfig(self.operator_kubeconfig, url, namespace=namespace, token=operator)
        agent = token[NODE_AGENT]
        write_kubeconfig(self._node_agent_kubeconfig, url, namespace=namespace, token=agent)

    def _install_admission_policies(self, client: ApiClient) -> None:
        """manifests/admission as they are, but naming the operator's actual ServiceAccount."""
        directory = PROJECT_ROOT / "manifests" / "admission"
        files = sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
        if not files:
            self.notices.append(f"Admission policies not installed: no {directory}")
            return
        api = AdmissionregistrationV1Api(client)
        default = service_account("conveyor-system", OPERATOR_SERVICE_ACCOUNT).username
        for path in files:
            text = path.read_text().replace(default, self.operator_identity.username)
            for document in (doc for doc in yaml.safe_load_all(text) if doc):
                if document["kind"] == "ValidatingAdmissionPolicy":
                    api.create_validating_admission_policy(document)
                else:
                    api.create_validating_admission_policy_binding(document)

    def _install_crds(self, client: ApiClient) -> None:
        api = ApiextensionsV1Api(client)
        for crd in self._crd_documents():
            with contextlib.suppress(ApiException):
                api.delete_custom_resource_definition(crd["metadata"]["name"])
            api.create_custom_resource_definition(crd)

    def _crd_documents(self) -> Iterator[dict[str, Any]]:
        directory = self.config.crds_dir or PROJECT_ROOT / "crds"
        if directory.is_dir() and any(directory.glob("*.yaml")):
            for path in sorted(directory.glob("*.yaml")):
                yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)
        else:  # an installed package without the repository: the models are the source
            for text in render_crds().values():
                yield yaml.safe_load(text)

    def _ensure_namespace(self, client: ApiClient, name: str) -> None:
        core = CoreV1Api(client)
        try:
            core.create_namespace({"metadata": {"name": name}})
        except ApiException as error:
            if error.status != 409:
                raise

    def _start_object_store(self, client: ApiClient) -> None:
        store = ObjectStore(
            data_dir=self.state_dir / "s3",
            log_file=self.log_dir / "s3.log",
            prefer=self.config.s3_backend,
        )
        self._store = self._stack.enter_context(store)
        store.ensure_buckets(*BUCKETS)
        seed_datasets(store.client())
        self._supervise(store.process, name="s3", url=store.endpoint, ready=self._restore_store)
        if self.config.s3_fault_proxy:
            self.s3_faults = self._stack.enter_context(S3FaultProxy(store.endpoint))
        credentials = {
            "AWS_ACCESS_KEY_ID": store.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": store.credentials.secret_key,
        }
        for namespace in {self.config.operator_namespace, self.config.namespace}:
            _put_secret(client, namespace, S3_SECRET, credentials)
        _put_secret(
            client, self.config.operator_namespace, WEBHOOK_SECRET, {"token": self.webhook_token}
        )

    def _start_node_agent(self) -> None:
        """The node agent talks to the API as itself, as a kubelet does."""
        client = self._stack.enter_context(load_api_client(str(self._node_agent_kubeconfig)))
        agent = NodeAgent(
            client,
            image=self.config.image,
            state_dir=self.state_dir,
            log_dir=self.log_dir,
        )
        self.node_agent = self._stack.enter_context(agent)

    def _restore_store(self, _: ManagedProcess) -> None:
        """After a restart: wait for S3, and give an in-memory server its buckets and data."""
        store = self.object_store
        store.wait_ready()
        store.ensure_buckets(*BUCKETS)
        if not store.persistent:
            seed_datasets(store.client())
            logger.warning(
                "The S3 server (%s) keeps objects in memory: snapshots and models written "
                "before its restart are gone. Its buckets and the examples' raw data are back.",
                store.backend,
            )

    def stop_operator(self) -> None:
        """Stop the operator's processes alone (tests of restarts); they are not restarted."""
        self.operators.stop()

    def start_operator(self) -> None:
        """Start the operator again after `stop_operator`, and wait until it is ready."""
        self.operators.start_again()

    def _start_operator(self) -> None:
        self.operator_env = self._operator_environment()
        if not self.config.operator:
            self.notices.append(
                "The operator is not started: run it yourself with "
                f"source {self.state_dir / 'operator.env'} && {shlex.join(OPERATOR_ARGV)}"
            )
            return
        env = {**os.environ, **self.operator_env}
        env.pop("KUBERNETES_SERVICE_HOST", None)  # the sandbox is the cluster, not the host's
        self.operators.start(
            env, lambda process, url, ready: self._supervise(process, url=url, ready=ready)
        )

    def _operator_environment(self) -> dict[str, str]:
        """The one list of what the operator is given: passed to its process and written to
        `.sandbox/operator.env`, so running it by hand gives it the same."""
        assert self._store is not None
        return {
            "KUBECONFIG": str(self.operator_kubeconfig),
            "CONVEYOR_PORT_HTTP": str(self.operator_port),
            "CONVEYOR_HTTP_HOST": "127.0.0.1",
            "CONVEYOR_IMAGE": self.config.image,
            "CONVEYOR_OPERATOR_NAMESPACE": self.config.operator_namespace,
            "CONVEYOR_S3_ENDPOINT": (self.s3_faults or self._store).endpoint,
            "CONVEYOR_S3_REGION": self._store.credentials.region,
            "CONVEYOR_RESYNC_SECONDS": str(self.config.resync_seconds),
            "CONVEYOR_MONITOR_INTERVAL_SECONDS": str(self.config.monitor_interval_seconds),
            "CONVEYOR_POLICY_INTERVAL_SECONDS": str(self.config.policy_interval_seconds),
            "CONVEYOR_LOG_LEVEL": self.config.operator_log_level,
            "PYTHONUNBUFFERED": "1",
            **ALLOCATOR_ENV,
            **self.config.extra_operator_env,
        }

    def _supervise(
        self,
        process: ManagedProcess,
        *,
        url: str,
        ready: Callable[[ManagedProcess], None],
        name: str | None = None,
    ) -> Supervised:
        """Start `process` unless it runs, and keep it running until the sandbox stops."""
        supervised = Supervised(
            process,
            name=name,
            url=url,
            ready=ready,
            backoff=self.config.backoff(),
            on_change=self._write_status,
        )
        self._supervised.append(supervised)
        return self._stack.enter_context(supervised)

    def _start_monitoring(self, client: ApiClient) -> None:
        monitoring = Monitoring(
            state_dir=self.state_dir / "monitoring",
            webhook_url=f"{self.operator_url}/webhooks/alertmanager",
            webhook_token=self.webhook_token,
            scrape_interval=self.config.prometheus_interval,
            evaluation_interval=self.config.prometheus_interval,
            rule_files=[
                quickened_rules(
                    PROJECT_ROOT / "manifests" / "monitoring" / "rules.yaml",
                    self.state_dir / "monitoring" / "rules.yaml",
                )
            ],
        )
        available, notice = monitoring.available()
        if not self.config.monitoring or not available:
            self.notices.append(notice or "Prometheus and Alertmanager disabled")
            return
        self._monitoring = self._stack.enter_context(monitoring)
        for process, url in monitoring.processes():
            self._supervise(process, url=url, ready=_await_monitoring(url))
        watcher = threading.Thread(
            target=self._sync_scrape_targets,
            args=(client, monitoring),
            daemon=True,
            name="sandbox-scrape-targets",
        )
        watcher.start()

    def _sync_scrape_targets(self, client: ApiClient, monitoring: Monitoring) -> None:
        """Keep Prometheus scraping the operator and every pod annotated prometheus.io/scrape."""
        core = CoreV1Api(client)
        operator = ScrapeTarget("conveyor-operator", f"127.0.0.1:{self.operator_port}", {})
        last: list[ScrapeTarget] = []
        while not self._stop_targets.wait(2.0):
            try:
                pods = core.list_pod_for_all_namespaces().items
            except Exception:  # the API emulator is stopping
                continue
            targets = [operator, *_pod_targets(pods)]
            if targets != last:
                monitoring.set_targets(targets)
                last = targets

    def _write_env_file(self) -> None:
        assert self._store is not None
        values = {
            "KUBECONFIG": str(self.kubeconfig),
            "CONVEYOR_S3_ENDPOINT": self._store.endpoint,
            "AWS_ACCESS_KEY_ID": self._store.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": self._store.credentials.secret_key,
            "AWS_DEFAULT_REGION": self._store.credentials.region,
            "CONVEYOR_OPERATOR_URL": self.operator_url,
            "CONVEYOR_WEBHOOK_TOKEN": self.webhook_token,
        }
        if self._monitoring is not None:
            values["PROMETHEUS_URL"] = self._monitoring.prometheus_url
            values["ALERTMANAGER_URL"] = self._monitoring.alertmanager_url
        notes = [
            "# The sandbox, for your shell: source this file, then kubectl, conveyor, aws.",
            "# The operator's own environment is in operator.env beside it.",
        ]
        _write_exports(self.state_dir / "env", notes, values)

    def _write_operator_env_file(self) -> None:
        path = self.state_dir / "operator.env"
        notes = [
            "# The operator's environment as the sandbox gives it (on top of the inherited one).",
            "# To run it by hand (with `conveyor sandbox up --no-operator`, or a debugger):",
            f"#   source {shlex.quote(str(path))} && {shlex.join(OPERATOR_ARGV)}",
            "unset KUBERNETES_SERVICE_HOST",
        ]
        _write_exports(path, notes, self.operator_env)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> list[ComponentStatus]:
        """Each part: state, pid, URL, restarts and how it last ended."""
        here = os.getpid()
        components = []
        if self._api is not None:
            log = str(self.log_dir)
            components.append(ComponentStatus("api", "Running", here, self._api.url, log=log))
            components.append(ComponentStatus("node-agent", "Running", here, log=log))
        components += [supervised.status() for supervised in self._supervised]
        return components

    def _write_status(self) -> None:
        """Rewrite .sandbox/status.json (atomically) for `conveyor sandbox status`."""
        snapshot = SandboxStatus(
            pid=os.getpid(),
            pid_started=process_start_ticks(os.getpid()),
            started_at=self._started_at,
            state_dir=str(self.state_dir),
            components=self.status(),
        )
        with self._status_lock:
            write_status(self.state_dir, snapshot)

    # -- what runs where ---------------------------------------------------------------------

    @property
    def operator_url(self) -> str:
        return f"http://127.0.0.1:{self.operator_port}"

    @property
    def monitoring(self) -> Monitoring | None:
        """Prometheus and Alertmanager, when they run."""
        return self._monitoring

    @property
    def object_store(self) -> ObjectStore:
        assert self._store is not None, "the sandbox is not started"
        return self._store

    def describe(self) -> list[tuple[str, str]]:
        """(component, where) rows for the person who started the sandbox."""
        assert self._api is not None and self._store is not None
        rows = [
            ("Kubernetes API (emulator)", f"{self._api.url}   kubeconfig {self.kubeconfig}"),
            ("S3", self._store.describe()),
            ("Node agent", f"runs pods of image {self.config.image}; logs in {self.log_dir}"),
            ("Operator", f"{self.operator_url}/metrics   log {self.log_dir / 'operator.log'}"),
        ]
        if not self.operators.replicas:
            rows[-1] = ("Operator", f"not started: source {self.state_dir / 'operator.env'}")
        if self._monitoring is not None:
            rows.append(("Prometheus", self._monitoring.prometheus_url))
            rows.append(("Alertmanager", self._monitoring.alertmanager_url))
        rows.append(("Environment", f"source {self.state_dir / 'env'}"))
        rows.append(("Status", f"conveyor sandbox status --state-dir {self.state_dir}"))
        return rows


def _await_monitoring(url: str) -> Callable[[ManagedProcess], None]:
    def ready(process: ManagedProcess) -> None:
        process.wait_http(f"{url}/-/ready", timeout=30, expect_status=READY)

    return ready


def _write_exports(path: Path, notes: Sequence[str], values: Mapping[str, str]) -> None:
    exports = [f"export {key}={shlex.quote(value)}" for key, value in values.items()]
    path.write_text("\n".join([*notes, *exports]) + "\n")


def _put_secret(client: ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    core = CoreV1Api(client)
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    body = {"metadata": {"name": name, "namespace": namespace}, "data": encoded, "type": "Opaque"}
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as error:
        if error.status != 409:
            raise
        core.patch_namespaced_secret(name, namespace, {"data": encoded})


def _pod_targets(pods: list[Any]) -> list[ScrapeTarget]:
    """Pods that ask to be scraped, at the host port the node agent gave them."""
    targets = []
    for pod in pods:
        annotations = pod.metadata.annotations or {}
        if annotations.get("prometheus.io/scrape") != "true" or pod.status.phase != "Running":
            continue
        ports = json.loads(annotations.get(PORTS_ANNOTATION, "{}"))
        wanted = annotations.get("prometheus.io/port", "http")
        port = ports.get(wanted) or ports.get("http")
        if port:
            labels = {"namespace": pod.metadata.namespace, "pod": pod.metadata.name}
            targets.append(ScrapeTarget("conveyor-serving", f"127.0.0.1:{port}", labels))
    return targets
