"""The sandbox S3 server: a real moto server process (and MinIO's launch contract)."""

from __future__ import annotations

import http.client
import json
import socket
import stat
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from conveyor.sandbox.objectstore import (
    PROJECT_BUCKETS,
    ObjectStore,
    S3Credentials,
    s3_client,
)
from conveyor.sandbox.processes import ProcessStartError, free_port
from tests.sandbox.netutil import port_is_free


def make_store(tmp_path: Path, **options: object) -> ObjectStore:
    return ObjectStore(data_dir=tmp_path / "s3", log_file=tmp_path / "s3.log", **options)


@pytest.fixture
def moto_store(tmp_path: Path) -> Iterator[ObjectStore]:
    with make_store(tmp_path, prefer="moto") as store:
        yield store


def http_get(endpoint_port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", endpoint_port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_moto_store_serves_s3_and_says_data_is_in_memory(moto_store: ObjectStore) -> None:
    assert moto_store.backend == "moto"
    assert moto_store.endpoint == f"http://127.0.0.1:{moto_store.port}"
    assert not moto_store.persistent
    assert "in memory" in moto_store.describe()
    assert moto_store.endpoint in moto_store.describe()
    with closing(moto_store.client()) as client:
        assert client.list_buckets()["Buckets"] == []


def test_ensure_buckets_is_idempotent_and_keeps_objects(moto_store: ObjectStore) -> None:
    moto_store.ensure_buckets(*PROJECT_BUCKETS)
    with closing(moto_store.client()) as client:
        client.put_object(Bucket="conveyor", Key="models/a.txt", Body=b"kept")
        moto_store.ensure_buckets(*PROJECT_BUCKETS, "extra")
        names = sorted(bucket["Name"] for bucket in client.list_buckets()["Buckets"])
        body = client.get_object(Bucket="conveyor", Key="models/a.txt")["Body"].read()
    assert names == ["conveyor", "conveyor-raw", "extra"]
    assert body == b"kept"


def test_client_uses_path_style_urls(moto_store: ObjectStore) -> None:
    moto_store.ensure_buckets("conveyor")
    with closing(moto_store.client()) as client:
        client.put_object(Bucket="conveyor", Key="reports/run-1.json", Body=b'{"ok": true}')
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": "conveyor", "Key": "reports/run-1.json"}
        )
    assert url.startswith(f"{moto_store.endpoint}/conveyor/reports/run-1.json?")
    status, body = http_get(moto_store.port, url.removeprefix(moto_store.endpoint))
    assert (status, json.loads(body)) == (200, {"ok": True})


def test_s3_client_helper_reaches_a_running_store(moto_store: ObjectStore) -> None:
    moto_store.ensure_buckets("conveyor-raw")
    credentials = S3Credentials("someone", "else-secret")  # moto accepts any credentials
    with closing(s3_client(moto_store.endpoint, credentials)) as client:
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["conveyor-raw"]


def test_stop_releases_the_port_and_moto_forgets_its_data(tmp_path: Path) -> None:
    store = make_store(tmp_path, prefer="moto")
    store.start()
    store.ensure_buckets("conveyor")
    assert not port_is_free(store.port)
    store.stop()
    store.stop()
    assert not store.running
    assert port_is_free(store.port)
    with store, closing(store.client()) as client:  # restarts on the same port, empty
        assert client.list_buckets()["Buckets"] == []


def test_a_busy_port_fails_with_the_servers_own_words(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        store = make_store(tmp_path, prefer="moto", port=port)
        with pytest.raises(ProcessStartError) as raised:
            store.start(timeout=15)
    assert "moto" in str(raised.value)
    assert "Address already in use" in str(raised.value)
    assert not store.running


def test_unknown_backend_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="auto, minio, moto"):
        make_store(tmp_path, prefer="s3")


def test_prefer_minio_without_the_binary_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProcessStartError, match="no minio binary is on PATH"):
        make_store(tmp_path, prefer="minio")
    assert make_store(tmp_path).backend == "moto"


FAKE_MINIO = """#!{python}
# Stands in for MinIO (not installable here): records how it was launched, then serves S3
# with moto on the address MinIO was told to use.
import json, os, sys
args = sys.argv[1:]
record = {{"args": args, "user": os.environ.get("MINIO_ROOT_USER"),
          "password": os.environ.get("MINIO_ROOT_PASSWORD")}}
with open({record!r}, "w") as handle:
    json.dump(record, handle)
host, port = args[args.index("--address") + 1].rsplit(":", 1)
os.execv(sys.executable, [sys.executable, "-m", "moto.server", "-H", host, "-p", port])
"""


def test_auto_prefers_minio_and_launches_it_as_minio_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "minio-launch.json"
    minio = bin_dir / "minio"
    minio.write_text(FAKE_MINIO.format(python=sys.executable, record=str(record)))
    minio.chmod(minio.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    store = make_store(tmp_path, credentials=S3Credentials("admin", "admin-secret"))
    assert store.backend == "minio"
    assert store.persistent
    assert str(tmp_path / "s3") in store.describe()
    with store:
        store.ensure_buckets("conveyor")

    launch = json.loads(record.read_text())
    args = launch["args"]
    assert args[:2] == ["server", str(tmp_path / "s3")]
    assert args[args.index("--address") + 1] == f"127.0.0.1:{store.port}"
    console = args[args.index("--console-address") + 1]
    assert console.startswith("127.0.0.1:")
    assert console != f"127.0.0.1:{store.port}"
    assert (launch["user"], launch["password"]) == ("admin", "admin-secret")
    assert port_is_free(store.port)
