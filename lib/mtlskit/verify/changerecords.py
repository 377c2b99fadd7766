"""The record of every day-2 change: who changed a stack's trust, when, from what to what, and the
proof that it worked.

Every change (`mtlskit.change`: rotation, partner certificates, enforcement, break-glass, rollback)
writes one JSON record when it ends, applied or not, to `changes.records` (a local folder or
gs://BUCKET/PREFIX; default `<repo>/runs/changes`) and beside the run that made it (the run's output
folder, `<run>/changes/`), so an audit finds it where the team keeps its runs. A record holds the
trust state saved before the change: that is the way back a rollback applies.

The format lives here, below the change layer, because the scheduled verification reads it too:
70_drift says when a rotation has been left half done, and does not call a trust config that an
open rotation's first phase applied "drift". Records hold certificates (public) and never private
key material: `write_record` refuses a record that carries any.

The phases of one change share its `change_id`, and so does the rollback of any of them: a rotation
is open while its phase 1 record has no later phase 2 or rollback record with the same id.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydantic

from mtlskit.config import paths
from mtlskit.config.params import Params
from mtlskit.core.checks import Check
from mtlskit.core.errors import KitError
from mtlskit.pki.files import PRIVATE_KEY_BLOCK

if TYPE_CHECKING:
    from mtlskit.cloud.clients import Clients

Kind = Literal["rotation", "partner", "trust", "enforcement", "break-glass", "rollback"]
Outcome = Literal["applied", "refused", "rolled back", "failed"]
KINDS: tuple[Kind, ...] = ("rotation", "partner", "trust", "enforcement", "break-glass", "rollback")
OUTCOMES: tuple[Outcome, ...] = ("applied", "refused", "rolled back", "failed")

# The runner sets this in the kernel that runs a notebook: the run's output folder, so a change made
# by a headless run is recorded beside it (see `runner.execute`).
RUN_DIR_VARIABLE = "MTLSKIT_RUN_DIR"
BESIDE_RUN = "changes"  # <run folder>/changes/<record>.json
DEFAULT_FOLDER = ("runs", "changes")  # under the repository root, when `changes.records` is unset
SUFFIX = ".json"
FORMAT = 1  # bumped when a field changes meaning; readers refuse formats they do not know


class RecordError(KitError, ValueError):
    """A record that must not be written: it carries private key material. Nothing was written."""


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass
class ChangeRecord:
    """One change to one stack, as it ended.

    `before` and `after` are trust states as `change.state.TrustState.to_dict()` writes them
    (certificates by role with their SHA-256 and PEM, the policy's mode, whether the proxy names the
    policy); `before` is the way back. `phase` counts from 1 among `phases` (a rotation has 2: add the
    new CA beside the old, later remove the old); a single-step change is phase 1 of 1.
    """

    stack: str
    change_id: str
    kind: Kind
    phase: int
    who: str
    started: dt.datetime
    finished: dt.datetime
    before: dict[str, Any]
    after: dict[str, Any]
    outcome: Outcome
    exit_code: int
    phases: int = 1
    before_fingerprint: str = ""
    after_fingerprint: str = ""
    mode_before: str | None = None
    mode_after: str | None = None
    impact: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  # a sentence the change adds: the gate's reason, the rollback's target, ...
    format: int = FORMAT

    def __post_init__(self) -> None:
        self.started, self.finished = _utc(self.started), _utc(self.finished)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: datetimes as ISO 8601 in UTC."""
        out: dict[str, Any] = _ADAPTER.dump_python(self, mode="json")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChangeRecord:
        """Validated: a missing field, an unknown kind or outcome, or a date that is not one raises
        `pydantic.ValidationError` naming the field."""
        record: ChangeRecord = _ADAPTER.validate_python(data)
        if record.format != FORMAT:
            raise ValueError(f"format {record.format}: this kit reads format {FORMAT}")
        return record

    def file_name(self) -> str:
        """Sortable by time, unique per phase: <finished>-<kind>-<change_id>-p<phase>.json."""
        stamp = self.finished.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", self.change_id)  # one file, never a folder
        return f"{stamp}-{self.kind}-{safe_id}-p{self.phase}{SUFFIX}"

    def certificates(self, which: Literal["before", "after"]) -> frozenset[tuple[str, str]]:
        """(role, sha256) of every certificate in the saved state `which`: what a live trust config is
        compared with, whatever else the state's dict carries."""
        state = self.before if which == "before" else self.after
        return certificate_set(state.get("certs") or [])


_ADAPTER = pydantic.TypeAdapter(ChangeRecord)


def certificate_set(certs: Iterable[dict[str, Any]]) -> frozenset[tuple[str, str]]:
    return frozenset((str(c.get("role", "")), str(c.get("sha256", "")).lower()) for c in certs)


def stack_of(params: Params) -> str:
    """Which stack a record belongs to: the project and the kit's ownership marker (`params.stack`),
    so several environments may share one records location."""
    return f"{params.project}/{params.stack}"


def new_change_id() -> str:
    """An id for a new change; its later phases and its rollback reuse it."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d") + "-" + uuid.uuid4().hex[:8]


def checks_as_rows(checks: Iterable[Check]) -> list[dict[str, Any]]:
    """Checks as the record keeps them: their table rows, as summary.json has them."""
    return [c.row() for c in checks]


# ---- who -------------------------------------------------------------------------------------------------


def who(clients: Clients) -> str:
    """The account the clients act as, for the record: on Google Cloud the service account's email
    (a key file, the metadata server of a VM or a GKE pod with Workload Identity, impersonation) or
    the user's account (`gcloud auth application-default login`), as google-auth knows it; on the
    sandbox, which takes anonymous calls, the local user who ran the change."""
    local = _local_user()
    if clients.target == "sandbox":
        return f"sandbox (anonymous credentials), local user {local}"
    account = google_account(clients.credentials)
    return account or f"unknown Google account, local user {local}"


def google_account(credentials: Any) -> str | None:
    """The account behind google-auth credentials, or None when they do not say.

    Service account keys, impersonated and federated-with-impersonation credentials carry
    `service_account_email`; the metadata server's credentials carry "default" until their first
    refresh asks the metadata server which account that is; user credentials carry `account`, which
    gcloud writes into the ADC file."""
    if credentials is None:
        return None
    email = getattr(credentials, "service_account_email", None)
    if email == "default":
        email = _refreshed_email(credentials)
    if isinstance(email, str) and "@" in email:
        return email
    account = getattr(credentials, "account", None)
    if isinstance(account, str) and account:
        return account
    return None


def _refreshed_email(credentials: Any) -> str | None:
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import Request

    try:
        credentials.refresh(Request())
    except (GoogleAuthError, OSError):
        return None
    email = getattr(credentials, "service_account_email", None)
    return email if isinstance(email, str) else None


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's random user)
        return f"uid {os.getuid()}"


# ---- where -----------------------------------------------------------------------------------------------


def records_location(params: Params) -> str:
    """`changes.records` (already absolute, or gs://), or `<repo>/runs/changes`."""
    return params.changes.records or str(paths.repo_root().joinpath(*DEFAULT_FOLDER))


def run_folder(run_dir: str | Path | None = None) -> Path | None:
    """The run's output folder: the one given, else the one the runner set for this kernel."""
    given = run_dir or os.environ.get(RUN_DIR_VARIABLE)
    return Path(given) if given else None


def _split_gs(location: str) -> tuple[str, str]:
    bucket, _, prefix = location[len("gs://") :].partition("/")
    return bucket, prefix.strip("/")


def _blob_name(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


# ---- write -----------------------------------------------------------------------------------------------


def record_text(record: ChangeRecord) -> str:
    """The record as JSON; refused when any private key block made its way into it."""
    text = json.dumps(record.to_dict(), indent=1, sort_keys=False) + "\n"
    if PRIVATE_KEY_BLOCK.search(text):
        raise RecordError(
            f"change record {record.change_id} (phase {record.phase}) carries private key material; "
            "nothing was written. Records keep certificates only: find what put a key into the "
            "record's states, impact or checks"
        )
    return text


def write_record(params: Params, record: ChangeRecord, run_dir: str | Path | None = None) -> list[str]:
    """Write `record` to the params' records location and beside the run (`run_dir`, else the folder
    the runner set for this kernel, if any); returns where it was written, local paths and gs:// URLs."""
    text = record_text(record)
    name = record.file_name()
    written = [_write(records_location(params), name, text, params)]
    beside = run_folder(run_dir)
    if beside is not None:
        written.append(_write(str(beside / BESIDE_RUN), name, text, params))
    return written


def copy_records(params: Params, run_dir: str | Path) -> list[str]:
    """The stack's records into `<run_dir>/changes/`: a verification's results then carry the records
    its drift check judged (uploaded with them by `mtlskit verify --out gs://...`)."""
    folder = str(Path(run_dir) / BESIDE_RUN)
    return [_write(folder, r.file_name(), record_text(r), params) for r in read_records(params)]


def _write(location: str, name: str, text: str, params: Params) -> str:
    if location.startswith("gs://"):
        from mtlskit.cloud.clients import storage_client

        bucket, prefix = _split_gs(location)
        blob = storage_client(params).bucket(bucket).blob(_blob_name(prefix, name))
        blob.upload_from_string(text, content_type="application/json")
        return f"gs://{bucket}/{_blob_name(prefix, name)}"
    folder = Path(location)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    tmp = folder / f".{name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, target)  # a reader never sees half a record
    return str(target)


# ---- read ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokenRecord:
    """A file in the records location that is not a readable record: where, and why."""

    where: str
    reason: str


class Records(list[ChangeRecord]):
    """A stack's records, oldest first, with the files that could not be read (`broken`): one bad
    file must not hide the others from the scheduled verification."""

    def __init__(self, records: Iterable[ChangeRecord] = (), broken: Iterable[BrokenRecord] = ()):
        super().__init__(records)
        self.broken = list(broken)


def read_records(params: Params, location: str | None = None) -> Records:
    """The params' stack's records from the records location (or `location`), oldest first."""
    where = location or records_location(params)
    stack = stack_of(params)
    good: list[ChangeRecord] = []
    broken: list[BrokenRecord] = []
    for source, text in _read_all(where, params):
        try:
            record = ChangeRecord.from_dict(json.loads(text))
        except (ValueError, TypeError) as err:  # JSON, validation (pydantic's is a ValueError), format
            broken.append(BrokenRecord(source, _first_line(err)))
            continue
        if record.stack == stack:
            good.append(record)
    good.sort(key=lambda r: (r.started, r.finished, r.phase))
    return Records(good, broken)


def last_record(params: Params, kind: Kind | None = None) -> ChangeRecord | None:
    """The stack's newest record (of `kind`, when given), or None."""
    found = [r for r in read_records(params) if kind is None or r.kind == kind]
    return found[-1] if found else None


def _read_all(location: str, params: Params) -> list[tuple[str, str]]:
    if location.startswith("gs://"):
        from mtlskit.cloud.clients import storage_client

        bucket, prefix = _split_gs(location)
        client = storage_client(params)
        blobs = client.list_blobs(bucket, prefix=f"{prefix}/" if prefix else None)
        out = []
        for blob in blobs:
            rest = blob.name[len(prefix) + 1 :] if prefix else blob.name
            if "/" in rest or not rest.endswith(SUFFIX):  # records sit directly under the prefix
                continue
            out.append((f"gs://{bucket}/{blob.name}", blob.download_as_text()))
        return out
    folder = Path(location)
    if not folder.is_dir():
        return []
    out = []
    for f in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            out.append((str(f), f.read_text()))
        except (OSError, UnicodeDecodeError) as err:
            out.append((str(f), f"unreadable: {err}"))  # fails to parse, so it is reported as broken
    return out


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return " ".join(line.strip() for line in text[:3]) if text else type(err).__name__


# ---- what the scheduled verification asks ----------------------------------------------------------------


def open_rotation(records: Iterable[ChangeRecord]) -> ChangeRecord | None:
    """The newest rotation whose phase 1 was applied and not since moved on: no later applied phase 2
    or rollback of the same change that left the trust config elsewhere (a rollback of phase 2
    restores phase 1's state, so the rotation is open again). Whether the stack is really still there,
    the live trust config says (`certificates("after")`)."""
    ordered = list(records)
    for i in range(len(ordered) - 1, -1, -1):
        r = ordered[i]
        if r.kind != "rotation" or r.phase != 1 or r.outcome != "applied":
            continue
        phase_one = r.certificates("after")
        moved_on = [
            o
            for o in ordered[i + 1 :]
            if o.change_id == r.change_id
            and o.outcome == "applied"
            and (o.kind == "rollback" or (o.kind == "rotation" and o.phase >= 2))
        ]
        if moved_on and moved_on[-1].certificates("after") != phase_one:
            return None
        return r
    return None
