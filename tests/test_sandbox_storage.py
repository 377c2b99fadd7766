"""Cloud Storage on the sandbox, through the clients that use it: google-cloud-storage, gcsfs and
papermill's gs:// writer."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import storage as gcs

from mtlskit.cloud import clients as clients_mod
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.sandbox import contract, process
from mtlskit.sandbox.env import Env, Settings
from mtlskit.sandbox.storage import Storage
from mtlskit.sandbox.web import ApiError, Request
from tests.conftest import PROJECT, sandbox_call

BUCKET = f"{PROJECT}-mtlskit"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def client(params: Params) -> gcs.Client:
    return clients_mod.storage_client(params)


@pytest.fixture
def bucket(client: gcs.Client) -> gcs.Bucket:
    return client.bucket(BUCKET)


def _counts(clients: Clients) -> dict[str, int]:
    return dict(sandbox_call(clients, "counters")["counts"])


def test_upload_download_and_metadata_with_google_cloud_storage(
    client: gcs.Client, bucket: gcs.Bucket, unique: str
) -> None:
    assert BUCKET in [b.name for b in client.list_buckets()]  # there from the start
    data = b'{"checks": []}\n'
    blob = bucket.blob(f"{unique}/summary.json")
    blob.upload_from_string(data, content_type="application/json")
    got = bucket.get_blob(f"{unique}/summary.json")
    assert got is not None
    assert got.size == len(data) and got.content_type == "application/json"
    assert got.md5_hash == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert got.crc32c == base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    assert got.generation == blob.generation and got.time_created is not None
    assert got.download_as_bytes() == data
    assert got.download_as_bytes(start=2, end=8) == data[2:9]  # a Range request, inclusive end
    blob.upload_from_string(b"second")  # a new generation replaces the object
    again = bucket.get_blob(f"{unique}/summary.json")
    assert again is not None and again.generation > got.generation and again.size == 6
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob(f"{unique}/summary.json").upload_from_string(b"x", if_generation_match=0)


def test_chunked_resumable_upload_over_8_mib(clients: Clients, bucket: gcs.Bucket, unique: str) -> None:
    data = os.urandom(9 * MIB + 123)
    before = _counts(clients).get("storage.objects.insert", 0)
    blob = bucket.blob(f"{unique}/big.bin", chunk_size=4 * MIB)
    blob.upload_from_string(data)
    # a session start, then chunks of 4 + 4 + 1 MiB: a chunked resumable upload, not one request
    assert _counts(clients)["storage.objects.insert"] - before == 4
    assert bucket.blob(f"{unique}/big.bin").download_as_bytes() == data
    plain = bucket.blob(f"{unique}/big-one-request.bin")
    plain.upload_from_string(data)  # over 8 MiB: resumable, in one request
    assert plain.size == len(data) and plain.download_as_bytes() == data


def test_list_with_prefix_delimiter_paging_and_glob(
    client: gcs.Client, bucket: gcs.Bucket, unique: str
) -> None:
    names = [
        f"{unique}/a.json",
        f"{unique}/b.txt",
        f"{unique}/d1/x.json",
        f"{unique}/d1/y.json",
        f"{unique}/d2/z.json",
    ]
    for name in names:
        bucket.blob(name).upload_from_string(name.encode())
    bucket.blob(f"{unique}x/elsewhere.json").upload_from_string(b"not under the prefix")

    everything = [b.name for b in client.list_blobs(BUCKET, prefix=f"{unique}/")]
    assert everything == names
    top = client.list_blobs(BUCKET, prefix=f"{unique}/", delimiter="/")
    assert [b.name for b in top] == [f"{unique}/a.json", f"{unique}/b.txt"]
    assert top.prefixes == {f"{unique}/d1/", f"{unique}/d2/"}

    pages = list(client.list_blobs(BUCKET, prefix=f"{unique}/", page_size=2).pages)
    assert [[b.name for b in p] for p in pages] == [names[0:2], names[2:4], names[4:5]]
    # a page counts prefixes too, and the token resumes after the last prefix given
    mixed = client.list_blobs(BUCKET, prefix=f"{unique}/", delimiter="/", page_size=3)
    mixed_pages = mixed.pages
    first = next(mixed_pages)
    assert [b.name for b in first] == [f"{unique}/a.json", f"{unique}/b.txt"]
    assert set(first.prefixes) == {f"{unique}/d1/"} and mixed.next_page_token
    assert set(next(mixed_pages).prefixes) == {f"{unique}/d2/"}

    json_anywhere = client.list_blobs(BUCKET, match_glob=f"{unique}/**.json")
    assert [b.name for b in json_anywhere] == [n for n in names if n.endswith(".json")]
    one_level = client.list_blobs(BUCKET, match_glob=f"{unique}/*.json")
    assert [b.name for b in one_level] == [f"{unique}/a.json"]


def test_delete_and_not_found_errors_read_as_google_s(
    client: gcs.Client, bucket: gcs.Bucket, unique: str
) -> None:
    blob = bucket.blob(f"{unique}/gone.txt")
    blob.upload_from_string(b"soon gone")
    blob.delete()
    assert not blob.exists()
    with pytest.raises(gexc.NotFound, match=f"No such object: {BUCKET}/{unique}/gone.txt"):
        blob.download_as_bytes()
    with pytest.raises(gexc.NotFound, match=f"No such object: {BUCKET}/{unique}/gone.txt"):
        blob.delete()
    with pytest.raises(gexc.NotFound, match="The specified bucket does not exist"):
        client.get_bucket(f"{unique}-missing")
    with pytest.raises(gexc.NotFound, match="The specified bucket does not exist"):
        client.bucket(f"{unique}-missing").blob("x").upload_from_string(b"x")


def test_buckets_created_with_the_client_are_checked_like_google_s(client: gcs.Client, unique: str) -> None:
    made = client.create_bucket(f"{unique}-reports")
    assert made.name == f"{unique}-reports" and made.location == "US"
    assert f"{unique}-reports" in [b.name for b in client.list_buckets(prefix=unique)]
    with pytest.raises(gexc.Conflict, match="you already own it"):
        client.create_bucket(f"{unique}-reports")
    with pytest.raises(gexc.BadRequest, match="Invalid bucket name"):
        client.create_bucket("Upper_Case")
    with pytest.raises(gexc.BadRequest, match=r"\$\.nonsense: unknown field"):  # the discovery document
        client._connection.api_request(
            "POST", "/b", query_params={"project": PROJECT}, data={"name": f"{unique}-x", "nonsense": 1}
        )
    made.blob("keep").upload_from_string(b"1")
    with pytest.raises(gexc.Conflict, match="not empty"):
        made.delete()
    made.blob("keep").delete()
    made.delete()
    assert client.lookup_bucket(f"{unique}-reports") is None


def test_multipart_upload_with_a_wrong_checksum_is_refused(clients: Clients, unique: str) -> None:
    boundary = "b0undary"
    meta = {"name": f"{unique}/c.txt", "crc32c": "AAAAAA=="}
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{json.dumps(meta)}\r\n"
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    resp = requests.post(
        f"{clients.endpoint}/upload/storage/v1/b/{BUCKET}/o?uploadType=multipart",
        data=body,
        headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        timeout=10,
    )
    assert resp.status_code == 400
    assert "Provided CRC32C" in resp.json()["error"]["message"]


def test_fault_switch_applies_to_storage(clients: Clients, no_faults: None) -> None:
    apis = sandbox_call(clients, "faults")["apis"]
    sandbox_call(
        clients, "faults", "POST", {"apis": [*apis, "storage"], "error_rate": 1.0, "statuses": [503]}
    )
    try:
        resp = requests.get(f"{clients.endpoint}/storage/v1/b/{BUCKET}", timeout=10)
        assert resp.status_code == 503 and resp.json()["error"]["code"] == 503
    finally:
        sandbox_call(clients, "faults", "POST", {"apis": apis, "error_rate": 0.0, "statuses": [429, 503]})
    assert requests.get(f"{clients.endpoint}/storage/v1/b/{BUCKET}", timeout=10).status_code == 200


@pytest.fixture
def storage_env(params: Params, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = clients_mod.storage_environment(params)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


def test_gcsfs_through_storage_emulator_host(storage_env: dict[str, str], unique: str) -> None:
    import gcsfs.core

    assert storage_env["STORAGE_EMULATOR_HOST"].startswith("http://127.0.0.1:")
    fs = gcsfs.core.GCSFileSystem(token="anon", skip_instance_cache=True)
    root = f"{BUCKET}/{unique}"
    with fs.open(f"{root}/logs/one.json", "wb") as f:
        f.write(b'{"n": 1}\n')
    big = os.urandom(6 * MIB)  # over gcsfs's 5 MiB block: a chunked resumable upload
    with fs.open(f"{root}/logs/sub/two.json", "wb") as f:
        f.write(big)
    fs.pipe(f"{root}/other.txt", b"other")
    assert fs.cat(f"{root}/logs/one.json") == b'{"n": 1}\n'
    assert fs.cat(f"{root}/logs/sub/two.json") == big
    with fs.open(f"{root}/logs/sub/two.json", "rb", block_size=MIB) as f:  # ranged reads
        f.seek(3 * MIB)
        assert f.read(10) == big[3 * MIB : 3 * MIB + 10]
    assert sorted(fs.glob(f"gs://{root}/**/*.json")) == [f"{root}/logs/one.json", f"{root}/logs/sub/two.json"]
    assert fs.ls(f"{root}/logs") == [f"{root}/logs/one.json", f"{root}/logs/sub"]
    assert fs.info(f"{root}/logs/sub")["type"] == "directory"
    assert fs.info(f"{root}/other.txt")["size"] == 5
    assert fs.exists(f"{root}/other.txt") and not fs.exists(f"{root}/nothing.txt")
    fs.rm(f"{root}/logs", recursive=True)
    fs.invalidate_cache()
    assert fs.ls(root) == [f"{root}/other.txt"]


def test_papermill_writes_an_executed_notebook_to_gs(
    storage_env: dict[str, str], client: gcs.Client, unique: str, tmp_path: Path
) -> None:
    """In a process started with `storage_environment`, as a scheduled run is: papermill's gs://
    handler (gcsfs) writes the notebook and reads it back."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    source = tmp_path / "executed.ipynb"
    nbformat.write(nb, source)
    target = f"gs://{BUCKET}/{unique}/runs/executed.ipynb"
    script = textwrap.dedent(
        f"""
        from papermill.iorw import load_notebook_node, write_ipynb
        write_ipynb(load_notebook_node({str(source)!r}), {target!r})
        print(load_notebook_node({target!r}).cells[0].outputs[0]["data"]["text/plain"])
        import gcsfs
        print(gcsfs.GCSFileSystem().credentials.method)  # the instance papermill's handler used
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **storage_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "anon"]  # no one's real credentials reach the sandbox
    assert "Could not determine bucket type" not in done.stderr  # gcsfs's gRPC probe is off
    stored = client.bucket(BUCKET).blob(f"{unique}/runs/executed.ipynb").download_as_bytes()
    assert nbformat.reads(stored.decode(), as_version=4).cells[0].source == "1 + 1"


def test_sandbox_env_exports_the_storage_endpoint_to_a_shell(params: Params, clients: Clients) -> None:
    info = process.status(params.state_dir)
    assert info is not None
    shown = subprocess.run(
        ["bash", "-c", 'eval "$1"; env', "-", process.shell_exports(info, PROJECT)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    env = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    assert env["STORAGE_EMULATOR_HOST"] == clients.endpoint
    assert env["CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE"] == f"{clients.endpoint}/storage/v1/"
    assert env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false" and env["FSSPEC_GS_TOKEN"] == "anon"
    # what the shell gets is what the kit gives a papermill process
    assert clients_mod.storage_environment(params) == {
        k: env[k] for k in clients_mod.storage_environment(params)
    }


# ---- the store: no server needed -------------------------------------------------------------------


def _request(method: str, path: str, body: bytes = b"", **headers: str) -> Request:
    return Request.build(method, path, {"Host": "127.0.0.1:1", **headers}, body)


def _serve(storage: Storage, req: Request) -> Any:
    from mtlskit.sandbox.storage import method_id

    parts = [p for p in req.path.split("/") if p]
    return storage.handle(req, parts, method_id(req, parts))


def test_objects_survive_a_restart_and_a_reset_leaves_no_bytes_behind(tmp_path: Path) -> None:
    settings = Settings(0.0, 0.0, 0)
    env = Env.open(tmp_path, settings, ["p1"])
    storage = Storage(env)
    up = _serve(
        storage,
        _request(
            "POST",
            "/upload/storage/v1/b/p1-mtlskit/o?uploadType=media&name=a%2Fb.txt",
            b"kept",
            **{"Content-Type": "text/plain"},
        ),
    )
    assert up.status == 200 and up.body["name"] == "a/b.txt" and up.body["size"] == "4"
    env.store.close()

    storage = Storage(Env.open(tmp_path, settings, ["p1"]))  # a restart: same state dir
    got = _serve(storage, _request("GET", "/download/storage/v1/b/p1-mtlskit/o/a%2Fb.txt?alt=media"))
    assert got.encode() == b"kept" and got.headers["Content-Type"] == "text/plain"
    assert len(list((tmp_path / "storage" / "blobs").iterdir())) == 1
    storage.store.close()

    for suffix in ("", "-wal", "-shm"):  # what `mtlskit sandbox reset` removes
        (tmp_path / f"state.sqlite{suffix}").unlink(missing_ok=True)
    storage = Storage(Env.open(tmp_path, settings, ["p1"]))
    assert list((tmp_path / "storage" / "blobs").iterdir()) == []
    with pytest.raises(ApiError) as err:
        _serve(storage, _request("GET", "/storage/v1/b/p1-mtlskit/o/a%2Fb.txt"))
    assert err.value.status == 404
    storage.store.close()


def test_buckets_carry_the_location_type_and_access_settings_google_derives(
    client: gcs.Client, unique: str
) -> None:
    regional = client.create_bucket(f"{unique}-regional", location="us-central1")
    assert (regional.location, regional.location_type, regional.rpo) == ("US-CENTRAL1", "region", None)
    assert regional.iam_configuration.public_access_prevention == "inherited"
    assert not regional.iam_configuration.uniform_bucket_level_access_enabled
    dual = client.bucket(f"{unique}-dual")
    dual.iam_configuration.uniform_bucket_level_access_enabled = True
    dual = client.create_bucket(dual, location="nam4")
    assert (dual.location_type, dual.rpo) == ("dual-region", "DEFAULT")
    assert dual.iam_configuration.uniform_bucket_level_access_enabled
    assert dual.iam_configuration.uniform_bucket_level_access_locked_time is not None
    assert dual.soft_delete_policy.retention_duration_seconds == 7 * 24 * 3600
    for bucket in (regional, dual):
        bucket.delete()


def test_a_bucket_kept_from_an_older_state_gets_the_fields_google_returns(tmp_path: Path) -> None:
    env = Env.open(tmp_path, Settings(0.0, 0.0, 0), ["p1"])
    old = {
        "kind": "storage#bucket",
        "id": "b-old",
        "name": "b-old",
        "projectNumber": "1",
        "metageneration": "1",
    }
    times = {"timeCreated": "2026-01-01T00:00:00.000000Z", "updated": "2026-01-02T00:00:00.000000Z"}
    env.store.put("storage", "buckets", "b-old", {**old, **times, "location": "EU", "_project": "p1"})
    storage = Storage(env)
    got = _serve(storage, _request("GET", "/storage/v1/b/b-old")).body
    assert {k: got[k] for k in times} == times and got["locationType"] == "multi-region"
    assert not contract.problems("storage", "Bucket", got)
    storage.store.close()
