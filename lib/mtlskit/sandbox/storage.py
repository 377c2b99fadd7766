"""Cloud Storage's JSON API, as far as `google-cloud-storage`, `gcsfs` (and so papermill) use it.

Scheduled verification writes executed notebooks, `summary.json` and the report to `gs://` and the
log analysis reads exported request logs from `gs://` globs; on the sandbox those calls land here,
through `STORAGE_EMULATOR_HOST`, which both clients honour. Served: buckets get, insert, list and
delete; objects get (metadata, or the bytes with `alt=media` on `/storage/v1` and `/download/storage/v1`,
whole or by `Range`), list (prefix, delimiter with `prefixes`, paging, start/end offsets, `matchGlob`),
patch, delete, and uploads by `uploadType=media`, `multipart` and `resumable` (chunked too). Methods
of the API that the sandbox does not serve (compose, rewrite, IAM, ...) and URLs of no method get
Google's unknown-method 404, never another method's answer.

Object bytes live as files under the state directory (the store holds JSON documents only); their
metadata, buckets and open resumable sessions live in the store, so all of it survives a restart.
Request bodies that carry metadata (`Bucket`, `Object`) are checked against the `storage v1`
discovery document that google-api-python-client ships, as the other stand-ins check theirs.

`Range` and `Content-Range` values are read with two small patterns: the headers' grammar is three
integers (RFC 9110 §14), and no HTTP library the sandbox already depends on exposes a parser.
Multipart bodies are read with the standard library's `email` parser (MIME is its format).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.message
import email.parser
import email.policy
import hashlib
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import quote, unquote

import google_crc32c

from mtlskit.sandbox import discovery
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.web import ApiError, Request, Response, now, rfc3339

API = "storage"  # its discovery document is registered in `discovery.DOCS` with the others

BLOB_DIR = "storage"  # under the state directory: blobs/ (objects' bytes) and uploads/ (open sessions)
BUCKET_SUFFIX = "-mtlskit"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
PAGE_SIZE = 1000
MULTI_REGIONS = {"US", "EU", "ASIA"}
DUAL_REGIONS = {"NAM4", "EUR4", "EUR5", "EUR7", "EUR8", "ASIA1"}  # the predefined ones
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
CONTENT_RANGE = re.compile(r"^bytes (?:(?P<first>\d+)-(?P<last>\d+)|\*)/(?P<total>\d+|\*)$")
RANGE = re.compile(r"^bytes=(?P<first>\d*)-(?P<last>\d*)$")
# Object fields a patch may change (the rest are the service's own).
WRITABLE = (
    "contentType",
    "contentEncoding",
    "contentDisposition",
    "contentLanguage",
    "cacheControl",
    "metadata",
)
SERVED = {
    "storage.buckets.get",
    "storage.buckets.insert",
    "storage.buckets.list",
    "storage.buckets.delete",
    "storage.objects.get",
    "storage.objects.insert",
    "storage.objects.list",
    "storage.objects.patch",
    "storage.objects.delete",
}
PREFIXES = (
    ["storage", "v1"],
    ["upload", "storage", "v1"],
    ["resumable", "upload", "storage", "v1"],  # the discovery document's resumable path (gcloud's)
    ["download", "storage", "v1"],
)


def is_storage_path(parts: list[str]) -> bool:
    return any(parts[: len(p)] == p for p in PREFIXES)


def method_id(req: Request, parts: list[str]) -> str:
    """The discovery method id of a served storage request. Uploads and downloads are `objects.insert`
    and `objects.get` at their media paths (the discovery document's own), and a resumable session's
    chunks are `PUT`s to the `objects.insert` upload URL that started it. Any other URL or HTTP method,
    a method of the API the sandbox does not serve included (compose, rewrite, IAM, ...), gets Google's
    unknown-method 404, as a URL no method has gets from Google: never another method's answer."""
    api = discovery.api(API)
    method = api.find(req.method, req.path)
    if (
        method is None
        and req.method == "PUT"
        and parts[0] in ("upload", "resumable")
        and req.arg("upload_id")
    ):
        method = api.find("POST", req.path)
    if method is None or method.id not in SERVED:
        raise ApiError.unknown_method(req.path)
    return method.id


def crc32c_of(data: bytes) -> str:
    """Cloud Storage's `crc32c`: the big-endian checksum, base64."""
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def md5_of(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _no_bucket(bucket: str) -> ApiError:
    return ApiError.google(404, "The specified bucket does not exist.", "notFound")


def _no_object(bucket: str, name: str) -> ApiError:
    return ApiError.google(404, f"No such object: {bucket}/{name}", "notFound")


def _invalid(message: str) -> ApiError:
    return ApiError.google(400, message, "invalid")


def _check(ref: str, body: Any) -> None:
    problems = discovery.check(API, ref, body)
    if problems:
        raise _invalid("Invalid JSON payload received. " + "; ".join(problems[:5]))


def _int_arg(req: Request, name: str) -> int | None:
    value = req.arg(name)
    if value is None or value == "":
        return None
    if not value.lstrip("-").isdigit():
        raise _invalid(f"Invalid value for {name}: {value!r} is not an integer.")
    return int(value)


class MediaResponse(Response):
    """An answer whose body is the object's bytes, not JSON."""

    def encode(self) -> bytes:
        return bytes(self.body or b"")


class Storage:
    def __init__(self, env: Env):
        self.env = env
        self.store = env.store
        self.root = env.state_dir / BLOB_DIR
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        self._complete_old_buckets()
        self.ensure_project_buckets()
        self._drop_orphans()

    # ---- state ---------------------------------------------------------------------------------------

    def ensure_project_buckets(self) -> None:
        """Every served project owns `<project>-mtlskit`, so `gs://` paths work before any setup."""
        for project in self.env.projects:
            name = project + BUCKET_SUFFIX
            if self.store.get(API, "buckets", name) is None:
                self._put_bucket(project, {"name": name})

    def _complete_old_buckets(self) -> None:
        """Buckets a state directory kept from before the sandbox gave every bucket the fields Google
        returns (generation, access settings, soft delete policy, location type) get them now."""
        for name, bucket in self.store.list(API, "buckets"):
            if "generation" in bucket:
                continue
            fresh = self._put_bucket(
                bucket["_project"], {k: v for k, v in bucket.items() if k != "locationType"}
            )
            times = {"timeCreated": bucket["timeCreated"], "updated": bucket["updated"]}
            fresh["softDeletePolicy"]["effectiveTime"] = bucket["timeCreated"]
            self.store.put(API, "buckets", name, {**fresh, **times})

    def _drop_orphans(self) -> None:
        """Blob files no metadata names (a reset forgot the store but not the files) are removed."""
        kept = {o["_blob"] for _, o in self.store.list(API, "objects")}
        kept |= {u["_file"] for _, u in self.store.list(API, "uploads")}
        for directory in ("blobs", "uploads"):
            for path in (self.root / directory).iterdir():
                if path.name not in kept:
                    path.unlink(missing_ok=True)

    def _bucket(self, name: str) -> dict[str, Any]:
        bucket = self.store.get(API, "buckets", name)
        if bucket is None:
            raise _no_bucket(name)
        return bucket

    def _object(self, bucket: str, name: str) -> dict[str, Any] | None:
        return self.store.get(API, "objects", f"{bucket}/{name}")

    def _next_generation(self) -> str:
        """Generations are microsecond timestamps, as Google's are, and never repeat."""
        micros = time.time_ns() // 1000
        last = int(self.store.meta("storage:generation", "0") or 0)
        generation = max(micros, last + 1)
        self.store.set_meta("storage:generation", str(generation))
        return str(generation)

    # ---- dispatch ------------------------------------------------------------------------------------

    def handle(self, req: Request, parts: list[str], method: str) -> Response:
        self.ensure_project_buckets()  # projects can be added while the sandbox runs
        base = f"http://{req.headers.get('host', '127.0.0.1')}"
        while parts[0] in ("resumable", "upload", "download"):
            parts = parts[1:]
        rest = [unquote(p) for p in parts[2:]]  # b/{bucket}[/o[/{object}]]
        if method == "storage.buckets.list":
            return self._list_buckets(req, base)
        if method == "storage.buckets.insert":
            return self._insert_bucket(req, base)
        bucket = self._bucket(rest[1])
        if method == "storage.buckets.get":
            return Response(200, self._bucket_view(bucket, base))
        if method == "storage.buckets.delete":
            return self._delete_bucket(rest[1])
        if method == "storage.objects.list":
            return self._list_objects(req, rest[1], base)
        if method == "storage.objects.insert":
            return self._upload(req, rest[1], base)
        name = rest[3]
        if method == "storage.objects.get":
            return self._get_object(req, rest[1], name, base)
        if method == "storage.objects.patch":
            return self._patch_object(req, rest[1], name, base)
        return self._delete_object(req, rest[1], name)

    # ---- buckets -------------------------------------------------------------------------------------

    def _put_bucket(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        now = rfc3339()
        location = (body.get("location") or "US").upper()
        kind = _location_type(location)
        bucket = {
            "kind": "storage#bucket",
            "id": body["name"],
            "name": body["name"],
            "projectNumber": str(google_crc32c.value(project.encode())),  # stable per project
            "generation": self._next_generation(),
            "metageneration": "1",
            "location": location,
            "locationType": kind,
            "storageClass": body.get("storageClass") or "STANDARD",
            "timeCreated": now,
            "updated": now,
            "etag": "CAE=",
            "iamConfiguration": _iam_configuration(body.get("iamConfiguration") or {}),
            # the default policy every bucket gets since 2024: soft-deleted objects are kept 7 days
            "softDeletePolicy": {"retentionDurationSeconds": "604800", "effectiveTime": now},
            "_project": project,
            **({"rpo": body.get("rpo") or "DEFAULT"} if kind != "region" else {}),
            **{k: v for k, v in body.items() if k in ("labels", "versioning")},
        }
        self.store.put(API, "buckets", body["name"], bucket)
        return bucket

    def _bucket_view(self, bucket: dict[str, Any], base: str) -> dict[str, Any]:
        view = {k: v for k, v in bucket.items() if not k.startswith("_")}
        view["selfLink"] = f"{base}/storage/v1/b/{bucket['name']}"
        return view

    def _project_arg(self, req: Request) -> str:
        project = req.arg("project")
        if not project:
            raise ApiError.google(400, "Required parameter: project", "required")
        self.env.require_project(project, API)
        return project

    def _list_buckets(self, req: Request, base: str) -> Response:
        project = self._project_arg(req)
        prefix = req.arg("prefix") or ""
        names = [
            b
            for _, b in self.store.list(API, "buckets")
            if b["_project"] == project and b["name"].startswith(prefix)
        ]
        page, token = key_page([(b["name"], b) for b in names], req)
        out: dict[str, Any] = {
            "kind": "storage#buckets",
            "items": [self._bucket_view(b, base) for _, b in page],
        }
        if token:
            out["nextPageToken"] = token
        return Response(200, out)

    def _insert_bucket(self, req: Request, base: str) -> Response:
        project = self._project_arg(req)
        body = req.json()
        _check("Bucket", body)
        name = body.get("name") or ""
        if not BUCKET_NAME.match(name) or ".." in name or name.startswith("goog"):
            raise _invalid(
                f"Invalid bucket name: '{name}'. Bucket names have 3 to 63 lowercase letters, digits, "
                "'-', '_' or '.', and start and end with a letter or digit."
            )
        if self.store.get(API, "buckets", name) is not None:
            raise ApiError.google(
                409,
                "Your previous request to create the named bucket succeeded and you already own it.",
                "conflict",
            )
        return Response(200, self._bucket_view(self._put_bucket(project, body), base))

    def _delete_bucket(self, name: str) -> Response:
        if any(key.startswith(f"{name}/") for key, _ in self.store.list(API, "objects", f"{name}/")):
            raise ApiError.google(409, "The bucket you tried to delete is not empty.", "conflict")
        self.store.delete(API, "buckets", name)
        return Response(204)

    # ---- objects: reads ------------------------------------------------------------------------------

    def _object_view(self, obj: dict[str, Any], base: str) -> dict[str, Any]:
        view = {k: v for k, v in obj.items() if not k.startswith("_")}
        path = f"b/{obj['bucket']}/o/{quote(obj['name'], safe='')}"
        view["selfLink"] = f"{base}/storage/v1/{path}"
        view["mediaLink"] = f"{base}/download/storage/v1/{path}?generation={obj['generation']}&alt=media"
        return view

    def _current(self, req: Request, bucket: str, name: str) -> dict[str, Any]:
        obj = self._object(bucket, name)
        generation = req.arg("generation")
        if obj is None or (generation and generation != obj["generation"]):
            raise _no_object(bucket, name)
        _preconditions(req, obj)
        return obj

    def _get_object(self, req: Request, bucket: str, name: str, base: str) -> Response:
        obj = self._current(req, bucket, name)
        if req.arg("alt") != "media":
            return Response(200, self._object_view(obj, base))
        data = (self.root / "blobs" / obj["_blob"]).read_bytes()
        headers = {
            "Content-Type": obj.get("contentType") or DEFAULT_CONTENT_TYPE,
            "ETag": obj["etag"],
            "x-goog-generation": obj["generation"],
            "x-goog-metageneration": obj["metageneration"],
            "x-goog-stored-content-length": obj["size"],
            "x-goog-stored-content-encoding": obj.get("contentEncoding") or "identity",
        }
        wanted = req.headers.get("range")
        if not wanted:
            headers["x-goog-hash"] = f"crc32c={obj['crc32c']},md5={obj['md5Hash']}"
            return MediaResponse(200, data, headers)
        first, last = _byte_range(wanted, len(data))
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return MediaResponse(206, data[first : last + 1], headers)

    def _list_objects(self, req: Request, bucket: str, base: str) -> Response:
        prefix = req.arg("prefix") or ""
        delimiter = req.arg("delimiter") or ""
        start, end = req.arg("startOffset") or "", req.arg("endOffset") or ""
        glob = _glob(req.arg("matchGlob"))
        trailing = (req.arg("includeTrailingDelimiter") or "").lower() == "true"
        entries: list[tuple[str, dict[str, Any] | None]] = []
        seen_prefixes: set[str] = set()
        for key, obj in self.store.list(API, "objects", f"{bucket}/{prefix}"):
            name = key[len(bucket) + 1 :]
            # the store's LIKE is case-blind and treats '_' as a wildcard: filter exactly here
            if not key.startswith(f"{bucket}/{prefix}") or name < start or (end and name >= end):
                continue
            if glob is not None and not glob.fullmatch(name):
                continue
            cut = name.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                folder = name[: cut + len(delimiter)]
                if folder not in seen_prefixes:
                    seen_prefixes.add(folder)
                    entries.append((folder, None))
                if not (trailing and name == folder):
                    continue
            entries.append((name, obj))
        page, token = key_page(entries, req)
        listed = {
            "items": [self._object_view(obj, base) for _, obj in page if obj is not None],
            "prefixes": [name for name, obj in page if obj is None],
            "nextPageToken": token,
        }
        # Cloud Storage leaves out what is empty rather than sending [] or "".
        return Response(200, {"kind": "storage#objects", **{k: v for k, v in listed.items() if v}})

    # ---- objects: writes -----------------------------------------------------------------------------

    def _upload(self, req: Request, bucket: str, base: str) -> Response:
        if req.arg("upload_id"):
            return self._resume(req, req.arg("upload_id") or "", base)
        kind = req.arg("uploadType") or (
            "multipart" if "multipart" in req.headers.get("content-type", "") else ""
        )
        if kind == "media":
            meta: dict[str, Any] = {"contentType": req.headers.get("content-type") or DEFAULT_CONTENT_TYPE}
            data = req.body
        elif kind == "multipart":
            meta, data = _multipart(req)
        elif kind == "resumable":
            return self._start_session(req, bucket, base)
        else:
            raise _invalid(f"Upload requests need uploadType media, multipart or resumable, not {kind!r}.")
        meta.setdefault("name", req.arg("name"))
        return Response(200, self._object_view(self._write(req, bucket, meta, data), base))

    def _start_session(self, req: Request, bucket: str, base: str) -> Response:
        meta = dict(req.json())
        _check("Object", meta)
        meta.setdefault("name", req.arg("name"))
        meta.setdefault("contentType", req.headers.get("x-upload-content-type") or DEFAULT_CONTENT_TYPE)
        if not meta["name"]:
            raise ApiError.google(400, "Required parameter: name", "required")
        _preconditions(req, self._object(bucket, meta["name"]))  # fail before any byte is sent
        upload_id = secrets.token_urlsafe(24)
        (self.root / "uploads" / upload_id).write_bytes(b"")
        conditions = {k: v[0] for k, v in req.query.items() if k.startswith("if")}
        session = {
            "bucket": bucket,
            "meta": meta,
            "received": 0,
            "_file": upload_id,
            "conditions": conditions,
        }
        self.store.put(API, "uploads", upload_id, session)
        location = f"{base}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id={upload_id}"
        # Google's answer to a session start is headers only: the body is empty, not `{}`
        return Response(200, None, {"Location": location, "X-GUploader-UploadID": upload_id})

    def _resume(self, req: Request, upload_id: str, base: str) -> Response:
        """One request of a resumable session: a chunk, the last chunk, or a status query."""
        session = self.store.get(API, "uploads", upload_id)
        if session is None:
            raise ApiError.google(404, f"No upload session {upload_id} (finished, cancelled or unknown).")
        path = self.root / "uploads" / session["_file"]
        received = session["received"]
        header = (req.headers.get("content-range") or "").strip()
        if not header:  # the whole object in one request
            header = f"bytes 0-{len(req.body) - 1}/{len(req.body)}" if req.body else "bytes */0"
        m = CONTENT_RANGE.match(header)
        if m is None:
            raise _invalid(f"Invalid Content-Range header: {header!r}.")
        total = None if m["total"] == "*" else int(m["total"])
        if m["first"] is not None:
            first, last = int(m["first"]), int(m["last"])
            if last - first + 1 != len(req.body):
                raise _invalid(
                    f"Content-Range {header!r} announces {last - first + 1} bytes, the body has {len(req.body)}."
                )
            if first > received:
                raise _invalid(
                    f"Invalid request. According to the Content-Range header, the upload offset is {first} "
                    f"byte(s), which exceeds already uploaded size of {received} byte(s)."
                )
            with path.open("ab") as out:
                out.write(req.body[received - first :])
            received = max(received, last + 1)
            session["received"] = received
            self.store.put(API, "uploads", upload_id, session)
        if total is not None and received > total:
            raise _invalid(f"The upload has {received} bytes, more than the {total} announced.")
        if total is None or received < total:
            headers = {"Range": f"bytes=0-{received - 1}"} if received else {}
            return Response(308, None, headers)
        data = path.read_bytes()
        req.query.update({k: [v] for k, v in session["conditions"].items()})
        obj = self._write(req, session["bucket"], dict(session["meta"]), data)
        self.store.delete(API, "uploads", upload_id)
        path.unlink(missing_ok=True)
        return Response(200, self._object_view(obj, base))

    def _write(self, req: Request, bucket: str, meta: dict[str, Any], data: bytes) -> dict[str, Any]:
        """Store a new generation of the object, after the same checks Cloud Storage makes."""
        _check("Object", meta)
        name = meta.get("name") or ""
        if not name or len(name.encode()) > 1024 or "\n" in name or "\r" in name:
            raise _invalid(f"Invalid object name: {name!r} (1 to 1024 bytes of UTF-8, no line breaks).")
        previous = self._object(bucket, name)
        _preconditions(req, previous)
        crc, md5 = crc32c_of(data), md5_of(data)
        for field, actual in (("crc32c", crc), ("md5Hash", md5)):
            sent = meta.get(field)
            if sent and sent != actual:
                label = "CRC32C" if field == "crc32c" else "MD5"
                raise _invalid(f'Provided {label} "{sent}" doesn\'t match calculated {label} "{actual}".')
        generation = self._next_generation()
        blob = f"{generation}-{secrets.token_hex(4)}"
        (self.root / "blobs" / blob).write_bytes(data)
        now = rfc3339()
        obj = {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/{generation}",
            "name": name,
            "bucket": bucket,
            "generation": generation,
            "metageneration": "1",
            "contentType": meta.get("contentType") or DEFAULT_CONTENT_TYPE,
            "storageClass": "STANDARD",
            "size": str(len(data)),
            "md5Hash": md5,
            "crc32c": crc,
            "etag": base64.b64encode(generation.encode()).decode(),
            "timeCreated": now,
            "updated": now,
            "timeStorageClassUpdated": now,
            "timeFinalized": now,
            "_blob": blob,
            **{k: meta[k] for k in WRITABLE if meta.get(k) is not None and k != "contentType"},
        }
        self.store.put(API, "objects", f"{bucket}/{name}", obj)
        if previous is not None:
            (self.root / "blobs" / previous["_blob"]).unlink(missing_ok=True)
        return obj

    def _patch_object(self, req: Request, bucket: str, name: str, base: str) -> Response:
        obj = self._current(req, bucket, name)
        body = req.json()
        _check("Object", body)
        for key, value in body.items():
            if key not in WRITABLE:
                continue
            if key == "metadata" and isinstance(value, dict):
                merged = {**obj.get("metadata", {}), **value}
                obj["metadata"] = {k: v for k, v in merged.items() if v is not None}
            elif value is None:
                obj.pop(key, None)
            else:
                obj[key] = value
        obj["metageneration"] = str(int(obj["metageneration"]) + 1)
        obj["updated"] = rfc3339()
        self.store.put(API, "objects", f"{bucket}/{name}", obj)
        return Response(200, self._object_view(obj, base))

    def _delete_object(self, req: Request, bucket: str, name: str) -> Response:
        obj = self._current(req, bucket, name)
        self.store.delete(API, "objects", f"{bucket}/{name}")
        (self.root / "blobs" / obj["_blob"]).unlink(missing_ok=True)
        return Response(204)


def _location_type(location: str) -> str:
    """Cloud Storage's `locationType` for a location: the multi-regions and predefined dual-regions
    by name, any other location a region."""
    if location in MULTI_REGIONS:
        return "multi-region"
    return "dual-region" if location in DUAL_REGIONS else "region"


def _iam_configuration(asked: dict[str, Any]) -> dict[str, Any]:
    """The whole `iamConfiguration` Google returns: uniform bucket-level access (mirrored in its old
    name, `bucketPolicyOnly`, with the 90-day deadline to turn it off when on) and public access
    prevention, from what the request asked for."""
    wanted = asked.get("uniformBucketLevelAccess") or asked.get("bucketPolicyOnly") or {}
    access: dict[str, Any] = {"enabled": bool(wanted.get("enabled"))}
    if access["enabled"]:
        access["lockedTime"] = rfc3339(now() + dt.timedelta(days=90))
    return {
        "bucketPolicyOnly": dict(access),
        "uniformBucketLevelAccess": dict(access),
        "publicAccessPrevention": asked.get("publicAccessPrevention") or "inherited",
    }


def _preconditions(req: Request, obj: dict[str, Any] | None) -> None:
    """`ifGenerationMatch` and friends; a missing object has generation 0 (so `=0` means 'create')."""
    generation = int(obj["generation"]) if obj else 0
    metageneration = int(obj["metageneration"]) if obj else 0
    checks = (
        ("ifGenerationMatch", lambda v: generation == v),
        ("ifGenerationNotMatch", lambda v: generation != v),
        ("ifMetagenerationMatch", lambda v: metageneration == v),
        ("ifMetagenerationNotMatch", lambda v: metageneration != v),
    )
    for name, holds in checks:
        wanted = _int_arg(req, name)
        if wanted is not None and not holds(wanted):
            raise ApiError.google(
                412, "At least one of the pre-conditions you specified did not hold.", "conditionNotMet"
            )


def key_page(entries: list[tuple[str, Any]], req: Request) -> tuple[list[tuple[str, Any]], str | None]:
    """One page of name-ordered entries; the token is the last name given, so a page is stable
    when objects are added or removed between requests (as Google's tokens are). Cloud DNS's lists
    (`mtlskit.sandbox.clouddns`) page the same way."""
    size = _int_arg(req, "maxResults") or PAGE_SIZE
    if size <= 0:
        raise _invalid("maxResults must be a positive integer.")
    token = req.arg("pageToken")
    after = base64.urlsafe_b64decode(token.encode()).decode() if token else None
    rest = [(k, v) for k, v in entries if after is None or k > after]
    page = rest[: min(size, PAGE_SIZE)]
    more = len(rest) > len(page)
    next_token = base64.urlsafe_b64encode(page[-1][0].encode()).decode() if more else None
    return page, next_token


def _byte_range(header: str, size: int) -> tuple[int, int]:
    m = RANGE.match(header.strip())
    if m is None or (not m["first"] and not m["last"]):
        raise _invalid(f"Invalid Range header: {header!r}.")
    if not m["first"]:
        first, last = max(0, size - int(m["last"])), size - 1
    else:
        first = int(m["first"])
        last = min(int(m["last"]), size - 1) if m["last"] else size - 1
    if first >= size or last < first:
        raise ApiError.google(416, "The requested range cannot be satisfied.", "requestedRangeNotSatisfiable")
    return first, last


def _glob(pattern: str | None) -> re.Pattern[str] | None:
    """`matchGlob`'s syntax: `**` crosses '/', `*` and `?` do not, `[...]` sets, `{a,b}` choices."""
    if not pattern:
        return None
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            close = pattern.find("]", i + 1)
            if close < 0:
                raise _invalid(f"Invalid matchGlob {pattern!r}: '[' is not closed.")
            body = pattern[i + 1 : close]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            i = close
        elif ch == "{":
            close = pattern.find("}", i + 1)
            if close < 0:
                raise _invalid(f"Invalid matchGlob {pattern!r}: '{{' is not closed.")
            out += "(?:" + "|".join(re.escape(p) for p in pattern[i + 1 : close].split(",")) + ")"
            i = close
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out, re.DOTALL)


def _multipart(req: Request) -> tuple[dict[str, Any], bytes]:
    """A `multipart/related` upload: the object's JSON metadata, then its bytes."""
    header = email.message.Message()  # the compat32 reader: gcloud's unquoted '=' trips the strict one
    header["Content-Type"] = req.headers.get("content-type", "")
    boundary = str(header.get_param("boundary") or "")
    if len(boundary) > 1 and boundary[0] == boundary[-1] == "'":
        boundary = boundary[1:-1]  # gcloud quotes it so; RFC 2045 quotes with '"', Cloud Storage takes both
    head = f'Content-Type: multipart/related; boundary="{boundary}"\r\n\r\n'.encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if len(parts) != 2:
        raise _invalid("A multipart upload has two parts: the object's metadata (JSON), then its data.")
    raw = parts[0].get_payload(decode=True)
    try:
        meta = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ApiError.google(400, f"Invalid JSON payload received. {exc}", "parseError") from None
    if not isinstance(meta, dict):
        raise _invalid("The first part of a multipart upload is the object's metadata, a JSON object.")
    meta.setdefault("contentType", parts[1].get_content_type())
    return meta, parts[1].get_payload(decode=True) or b""
