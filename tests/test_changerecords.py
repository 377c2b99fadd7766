"""Change records: written locally, beside the run and to the sandbox's Cloud Storage bucket (the real
google-cloud-storage client), read back oldest first; broken files reported, not fatal; never a
private key; who made the change; which rotation is still open."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from mtlskit.cloud.clients import Clients, storage_client
from mtlskit.config import params as params_mod
from mtlskit.pki import certs
from mtlskit.pki.files import PRIVATE_KEY_BLOCK
from mtlskit.verify import changerecords as cr
from tests.conftest import sandbox_params
from tests.recordstates import NOW, ca, record, state


@pytest.fixture(scope="module")
def cas() -> dict[str, certs.Issued]:
    old = ca("old root")
    new = ca("new root")
    return {"old": old, "new": new, "inter": ca("old intermediate", issuer=old)}


def local_params(tmp_path: Path, records: str | None = None) -> params_mod.Params:
    return sandbox_params(tmp_path / "state", changes={"records": records or str(tmp_path / "records")})


def rotation(cas: dict[str, certs.Issued], **kw: object) -> tuple[cr.ChangeRecord, cr.ChangeRecord]:
    old = state(("anchor", cas["old"]), ("intermediate", cas["inter"]))
    both = state(("anchor", cas["old"]), ("anchor", cas["new"]), ("intermediate", cas["inter"]))
    new = state(("anchor", cas["new"]))
    one = record("rotation", 1, old, both, finished=NOW - dt.timedelta(days=20), **kw)  # type: ignore[arg-type]
    two = record("rotation", 2, both, new, finished=NOW - dt.timedelta(days=1), **kw)  # type: ignore[arg-type]
    return one, two


def test_records_are_written_locally_and_beside_the_run_and_read_back_oldest_first(
    tmp_path: Path, cas: dict[str, certs.Issued]
) -> None:
    params = local_params(tmp_path)
    one, two = rotation(cas)
    run = tmp_path / "run"
    written = cr.write_record(params, two, run_dir=run) + cr.write_record(params, one)
    assert written[0] == str(tmp_path / "records" / two.file_name())
    assert written[1] == str(run / cr.BESIDE_RUN / two.file_name())
    assert json.loads(Path(written[1]).read_text())["change_id"] == two.change_id

    read = cr.read_records(params)
    assert [(r.phase, r.finished) for r in read] == [(1, one.finished), (2, two.finished)]
    assert read[0] == one and read.broken == []
    assert cr.last_record(params) == two
    assert cr.last_record(params, kind="rollback") is None
    odd = record("trust", 1, one.before, one.after, change_id="../team/x")
    assert Path(cr.write_record(params, odd)[0]).parent == tmp_path / "records"  # an id names no folder


def test_the_run_folder_comes_from_the_runner_s_variable(
    tmp_path: Path, cas: dict[str, certs.Issued], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = local_params(tmp_path)
    monkeypatch.setenv(cr.RUN_DIR_VARIABLE, str(tmp_path / "the-run"))
    one, _ = rotation(cas)
    written = cr.write_record(params, one)
    assert written[1] == str(tmp_path / "the-run" / cr.BESIDE_RUN / one.file_name())


def test_a_broken_record_is_reported_and_the_others_still_read(
    tmp_path: Path, cas: dict[str, certs.Issued]
) -> None:
    params = local_params(tmp_path)
    one, two = rotation(cas)
    cr.write_record(params, one)
    folder = tmp_path / "records"
    (folder / "20261201T000000.000000Z-torn.json").write_text('{"stack": "mtlsk')
    bad_kind = {**one.to_dict(), "kind": "upgrade", "change_id": "x"}
    (folder / "20261202T000000.000000Z-kind.json").write_text(json.dumps(bad_kind))
    other_stack = record("trust", 1, one.before, one.after, stack="another-project/mtlskit")
    cr.write_record(params, other_stack)

    read = cr.read_records(params)
    assert read == [one]  # another stack's record is not this stack's
    reasons = {Path(b.where).name: b.reason for b in read.broken}
    assert set(reasons) == {"20261201T000000.000000Z-torn.json", "20261202T000000.000000Z-kind.json"}
    assert "kind" in reasons["20261202T000000.000000Z-kind.json"]


def test_records_hold_certificates_and_no_private_key(tmp_path: Path, cas: dict[str, certs.Issued]) -> None:
    params = local_params(tmp_path)
    one, _ = rotation(cas)
    written = cr.write_record(params, one, run_dir=tmp_path / "run")
    for path in written:
        text = Path(path).read_text()
        assert "BEGIN CERTIFICATE" in text  # the states carry the certificates: the way back
        assert not PRIVATE_KEY_BLOCK.search(text) and "PRIVATE KEY" not in text

    key_pem = _key_pem(cas["old"].key)
    leaky = record("partner", 1, one.before, {**one.after, "note": key_pem}, change_id="leak")
    with pytest.raises(cr.RecordError, match="private key material; nothing was written"):
        cr.write_record(params, leaky, run_dir=tmp_path / "run")
    assert not any("leak" in p.name for p in tmp_path.rglob("*.json"))


def _key_pem(key: certs.PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_records_go_to_the_sandbox_bucket_and_come_back(
    params: params_mod.Params, clients: Clients, cas: dict[str, certs.Issued], tmp_path: Path
) -> None:
    """The real google-cloud-storage client against the sandbox's Cloud Storage."""
    bucket = f"{params.project}-mtlskit"
    prefix = f"records-{uuid.uuid4().hex[:8]}"
    in_gs = params.model_copy(
        update={"changes": params.changes.model_copy(update={"records": f"gs://{bucket}/{prefix}"})}
    )
    one, two = rotation(cas)
    written = cr.write_record(in_gs, one) + cr.write_record(in_gs, two, run_dir=tmp_path / "run")
    assert written[0] == f"gs://{bucket}/{prefix}/{one.file_name()}"
    assert (tmp_path / "run" / cr.BESIDE_RUN / two.file_name()).is_file()
    blob = storage_client(in_gs).bucket(bucket).blob(f"{prefix}/nested/ignored.json")
    blob.upload_from_string("not a record")  # not directly under the prefix: not a record of it
    read = cr.read_records(in_gs)
    assert read == [one, two] and read.broken == []
    assert cr.last_record(in_gs, kind="rotation") == two


def test_who_names_the_account_google_auth_knows() -> None:
    def with_credentials(target: str, credentials: object) -> Clients:
        return SimpleNamespace(target=target, credentials=credentials)  # type: ignore[return-value]

    key = _key_pem(certs.new_key("rsa2048"))  # a service account key is RSA
    sa = service_account.Credentials.from_service_account_info(
        {
            "type": "service_account",
            "client_email": "verifier@my-project.iam.gserviceaccount.com",
            "private_key": key,
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )
    assert cr.who(with_credentials("gcp", sa)) == "verifier@my-project.iam.gserviceaccount.com"
    user = user_credentials.Credentials("token", account="oncall@example.com")
    assert cr.who(with_credentials("gcp", user)) == "oncall@example.com"
    nobody = cr.who(with_credentials("gcp", user_credentials.Credentials("token")))
    assert nobody.startswith("unknown Google account, local user ")
    sandbox = cr.who(with_credentials("sandbox", None))
    assert sandbox.startswith("sandbox (anonymous credentials), local user ")


def test_an_open_rotation_is_phase_one_without_a_later_phase_two_or_rollback(
    cas: dict[str, certs.Issued],
) -> None:
    one, two = rotation(cas)
    assert cr.open_rotation([one]) == one
    assert cr.open_rotation([one, two]) is None
    back_to_start = record("rollback", 1, one.after, one.before, finished=NOW)
    assert cr.open_rotation([one, back_to_start]) is None
    back_to_phase_one = record("rollback", 2, two.after, two.before, finished=NOW)
    assert cr.open_rotation([one, two, back_to_phase_one]) == one  # phase 2 undone: half done again
    refused_two = record("rotation", 2, one.after, one.after, outcome="refused")
    assert cr.open_rotation([one, refused_two]) == one
    other = record("rotation", 2, one.after, two.after, change_id="another")
    assert cr.open_rotation([one, other]) == one
