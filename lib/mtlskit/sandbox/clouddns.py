"""Cloud DNS's JSON API (`dns.googleapis.com/dns/v1`), as far as a migration's cut-over uses it.

A migration moves a live frontend to a new IP by changing its domains' A records; the kit reads and
changes them through `google-cloud-dns`, and a person through `gcloud dns record-sets ...`. Served:
managedZones get and list; resourceRecordSets list, get, create, patch and delete; changes create,
get and list. Every other method of the discovery document gets Google's unknown-method 404.

Every served project has the sandbox's zone (`rules.dns.SANDBOX_ZONE`, `mtlskit.test.`) with its
SOA and NS record sets and the change "0" that made them, as a zone Cloud DNS creates has. Nothing
else is published: the kit's DNS step creates the domains' A records through this API.

A change is checked as Cloud DNS checks it (a deletion must match an existing record set exactly,
an addition must not collide with one that stays, names must be fully qualified and in the zone)
and refused whole with Google's reason and wording. The API shows the change's record sets at once
with `status: pending`; after the sandbox's operation delay the change is `done` and only then does
the sandbox's DNS responder (`mtlskit.sandbox.dnsserver`) answer with its records, as Google's name
servers take up a change after the API has accepted it. The record-set methods (create, patch,
delete) are changes too, and are listed with them.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from mtlskit.rules import dns as rules
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.storage import key_page
from mtlskit.sandbox.web import ApiError, Request, Response, new_id, rfc3339

API = "dns"  # its discovery document is registered in `discovery.DOCS` with the others

SERVED = {
    "dns.managedZones.get",
    "dns.managedZones.list",
    "dns.resourceRecordSets.list",
    "dns.resourceRecordSets.get",
    "dns.resourceRecordSets.create",
    "dns.resourceRecordSets.patch",
    "dns.resourceRecordSets.delete",
    "dns.changes.create",
    "dns.changes.get",
    "dns.changes.list",
}
NAME_SERVERS = [f"ns-cloud-a{i}.googledomains.com." for i in range(1, 5)]
SOA_TTL = 21600
SOA = "ns-cloud-a1.googledomains.com. cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300"
CHANGE_ID_WIDTH = 10  # store keys sort by change sequence


def is_dns_path(parts: list[str]) -> bool:
    return parts[:3] == ["dns", "v1", "projects"]


def _invalid(field: str, value: Any) -> ApiError:
    return ApiError.google(400, f"Invalid value for '{field}': '{value}'", "invalid")


def _required(field: str) -> ApiError:
    return ApiError.google(400, f"The '{field}' parameter is required but was missing.", "required")


def _view(rrset: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "dns#resourceRecordSet",
        "name": rrset["name"],
        "type": rrset["type"],
        "ttl": int(rrset["ttl"]),
        "rrdatas": list(rrset["rrdatas"]),
    }


class CloudDns:
    def __init__(self, env: Env):
        self.env = env
        self.store = env.store
        self.ensure_zones()

    # ---- state ---------------------------------------------------------------------------------------

    def ensure_zones(self) -> None:
        """Every served project has the sandbox's zone (projects can be added while it runs)."""
        with self.store.lock:
            for project in self.env.projects:
                if self.store.get(API, "zones", f"{project}/{rules.SANDBOX_ZONE}") is None:
                    self._create_zone(project, rules.SANDBOX_ZONE, rules.SANDBOX_DNS_NAME)

    def _create_zone(self, project: str, name: str, dns_name: str) -> None:
        now = rfc3339()
        zone = {
            "kind": "dns#managedZone",
            "name": name,
            "dnsName": dns_name,
            "description": "The sandbox's zone for its frontends' domains",
            "id": new_id(),
            "nameServers": NAME_SERVERS,
            "creationTime": now,
            "visibility": "public",
            "cloudLoggingConfig": {"kind": "dns#managedZoneCloudLoggingConfig"},
            "_project": project,
        }
        self.store.put(API, "zones", f"{project}/{name}", zone)
        apex = [
            _view({"name": dns_name, "type": "NS", "ttl": SOA_TTL, "rrdatas": NAME_SERVERS}),
            _view({"name": dns_name, "type": "SOA", "ttl": SOA_TTL, "rrdatas": [SOA]}),
        ]
        for rrset in apex:
            self._put_rrset("rrsets", project, name, rrset)
            self._put_rrset("served", project, name, rrset)
        self._put_change(
            project, name, {"id": "0", "additions": apex, "startTime": now, "status": "done", "_doneAt": 0}
        )

    def _zone(self, project: str, name_or_id: str) -> dict[str, Any]:
        self.env.require_project(project, API)
        zone = self.store.get(API, "zones", f"{project}/{name_or_id}")
        if zone is None:  # "the managed zone name or ID"
            zone = next(
                (z for _, z in self.store.list(API, "zones", f"{project}/") if z["id"] == name_or_id), None
            )
        if zone is None:
            raise ApiError.google(
                404, f"The 'parameters.managedZone' resource named '{name_or_id}' does not exist.", "notFound"
            )
        return zone

    @staticmethod
    def _key(project: str, zone: str, name: str, type_: str) -> str:
        return f"{project}/{zone}/{rules.fqdn(name)}/{type_}"

    def _put_rrset(self, collection: str, project: str, zone: str, rrset: dict[str, Any]) -> None:
        key = self._key(project, zone, rrset["name"], rrset["type"])
        self.store.put(API, collection, key, _view(rrset))

    def _rrsets(self, collection: str, project: str, zone: str) -> list[dict[str, Any]]:
        return [r for _, r in self.store.list(API, collection, f"{project}/{zone}/")]

    def _changes(self, project: str, zone: str) -> list[dict[str, Any]]:
        return [c for _, c in self.store.list(API, "changes", f"{project}/{zone}/")]

    def _put_change(self, project: str, zone: str, change: dict[str, Any]) -> None:
        key = f"{project}/{zone}/{int(change['id']):0{CHANGE_ID_WIDTH}d}"
        self.store.put(API, "changes", key, change)

    def settle(self, project: str, zone: str) -> None:
        """Changes whose delay has passed become `done`, and the responder's records take them up,
        in change order. Only pending changes are read (every DNS query settles first)."""
        now = time.time()
        for key, pending in self.store.list(API, "pending", f"{project}/{zone}/"):
            if pending["_doneAt"] > now:
                break  # later changes are later still
            change = self.store.get(API, "changes", key)
            self.store.delete(API, "pending", key)
            if change is None:
                continue
            for rrset in change.get("deletions", []):
                self.store.delete(API, "served", self._key(project, zone, rrset["name"], rrset["type"]))
            for rrset in change.get("additions", []):
                self._put_rrset("served", project, zone, rrset)
            change["status"] = "done"
            self._put_change(project, zone, change)

    def served_zones(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Every public zone with the record sets its name servers answer with now (done changes
        only), for the DNS responder."""
        with self.store.lock:
            self.ensure_zones()
            out = []
            for _, zone in self.store.list(API, "zones"):
                self.settle(zone["_project"], zone["name"])
                out.append((zone, self._rrsets("served", zone["_project"], zone["name"])))
            return out

    # ---- dispatch ------------------------------------------------------------------------------------

    def handle(self, req: Request, parts: list[str], method: str) -> Response:
        """`parts`: the path below `dns/v1/projects/`."""
        if method not in SERVED:
            raise ApiError.unknown_method(req.path)
        self.ensure_zones()
        rest = [unquote(p) for p in parts[3:]]  # {project}/managedZones[/{zone}[/rrsets|changes[/...]]]
        project = rest[0]
        if method == "dns.managedZones.list":
            self.env.require_project(project, API)
            return self._list_zones(req, project)
        zone = self._zone(project, rest[2])
        if method == "dns.managedZones.get":
            return Response(200, _zone_view(zone))
        self.settle(project, zone["name"])
        if method == "dns.changes.create":
            return Response(200, self._apply(project, zone, req.json(), "entity.change"))
        if method == "dns.changes.list":
            return self._list_changes(req, project, zone)
        if method == "dns.changes.get":
            return Response(200, _change_view(self._change(project, zone, rest[4])))
        if method == "dns.resourceRecordSets.list":
            return self._list_rrsets(req, project, zone)
        if method == "dns.resourceRecordSets.create":
            body = req.json()
            self._apply(project, zone, {"additions": [body]}, "entity.change")
            return Response(200, _view({**body, "name": rules.fqdn(str(body.get("name")))}))
        current = self._rrset(project, zone, rest[4], rest[5])
        if method == "dns.resourceRecordSets.get":
            return Response(200, current)
        if method == "dns.resourceRecordSets.delete":
            self._apply(project, zone, {"deletions": [current]}, "entity.change")
            return Response(200, {})
        # patch: the fields given replace the record set's own (name and type stay)
        body = {k: v for k, v in req.json().items() if k in ("ttl", "rrdatas")}
        patched = {**current, **body}
        self._apply(project, zone, {"deletions": [current], "additions": [patched]}, "entity.change")
        return Response(200, _view(patched))

    # ---- reads ---------------------------------------------------------------------------------------

    def _list_zones(self, req: Request, project: str) -> Response:
        wanted = req.arg("dnsName")
        if wanted is not None and not wanted.endswith("."):
            raise _invalid("parameters.dnsName", wanted)
        zones = [
            (z["name"], z)
            for _, z in self.store.list(API, "zones", f"{project}/")
            if wanted is None or z["dnsName"] == rules.fqdn(wanted)
        ]
        return _list_page(zones, req, "dns#managedZonesListResponse", "managedZones", _zone_view)

    def _list_rrsets(self, req: Request, project: str, zone: dict[str, Any]) -> Response:
        name, type_ = req.arg("name"), req.arg("type")
        if req.arg("filter"):
            raise _invalid("parameters.filter", req.arg("filter"))  # the sandbox reads name and type only
        if name is not None and not name.endswith("."):
            raise _invalid("parameters.name", name)
        if type_ is not None and name is None:
            raise _invalid("parameters.name", "' (name must be specified if type is specified)'")
        rrsets = [
            (f"{r['name']}/{r['type']}", r)
            for r in self._rrsets("rrsets", project, zone["name"])
            if (name is None or r["name"] == rules.fqdn(name)) and (type_ is None or r["type"] == type_)
        ]
        return _list_page(
            sorted(rrsets, key=lambda e: e[0]),
            req,
            "dns#resourceRecordSetsListResponse",
            "rrsets",
            lambda r: r,
        )

    def _rrset(self, project: str, zone: dict[str, Any], name: str, type_: str) -> dict[str, Any]:
        found = self.store.get(API, "rrsets", self._key(project, zone["name"], name, type_))
        if found is None:
            raise ApiError.google(
                404, f"The 'parameters.name' resource named '{name} ({type_})' does not exist.", "notFound"
            )
        return found

    def _change(self, project: str, zone: dict[str, Any], change_id: str) -> dict[str, Any]:
        found = None
        if change_id.isdigit():
            key = f"{project}/{zone['name']}/{int(change_id):0{CHANGE_ID_WIDTH}d}"
            found = self.store.get(API, "changes", key)
        if found is None:
            raise ApiError.google(
                404, f"The 'parameters.changeId' resource named '{change_id}' does not exist.", "notFound"
            )
        return found

    def _list_changes(self, req: Request, project: str, zone: dict[str, Any]) -> Response:
        order = req.arg("sortOrder") or "ascending"
        if order not in ("ascending", "descending"):
            raise _invalid("parameters.sortOrder", order)
        changes = self._changes(project, zone["name"])
        if order == "descending":
            changes.reverse()
        # the token orders like the changes: a zero-padded sequence, inverted when descending
        entries = [
            (
                f"{int(c['id']) if order == 'ascending' else 10**CHANGE_ID_WIDTH - int(c['id']):0{CHANGE_ID_WIDTH}d}",
                c,
            )
            for c in changes
        ]
        return _list_page(entries, req, "dns#changesListResponse", "changes", _change_view)

    # ---- changes -------------------------------------------------------------------------------------

    def _apply(self, project: str, zone: dict[str, Any], body: dict[str, Any], entity: str) -> dict[str, Any]:
        """Check a change as Cloud DNS does (refused whole, nothing changed), record it and apply it to
        the API's record sets; the responder takes it up once it is done."""
        additions = [
            self._checked(r, zone, f"{entity}.additions[{i}]")
            for i, r in enumerate(body.get("additions") or [])
        ]
        deletions = [
            self._checked(r, zone, f"{entity}.deletions[{i}]")
            for i, r in enumerate(body.get("deletions") or [])
        ]
        if not additions and not deletions:
            raise _required(entity)
        existing = {rules.record_key(r): r for r in self._rrsets("rrsets", project, zone["name"])}
        for i, rrset in enumerate(deletions):
            there = existing.get(rules.record_key(rrset))
            if there is None:
                raise ApiError.google(
                    404,
                    f"The '{entity}.deletions[{i}]' resource named '{rrset['name']} ({rrset['type']})' "
                    "does not exist.",
                    "notFound",
                )
            if not rules.same_record_set(there, rrset):
                raise ApiError.google(
                    412, f"Precondition not met for '{entity}.deletions[{i}]'", "conditionNotMet"
                )
        deleted = {rules.record_key(r) for r in deletions}
        for i, rrset in enumerate(additions):
            key = rules.record_key(rrset)
            if key in existing and key not in deleted:
                raise ApiError.google(
                    409,
                    f"The resource '{entity}.additions[{i}]' named '{rrset['name']} ({rrset['type']})' "
                    "already exists",
                    "alreadyExists",
                )
        for rrset in deletions:
            self.store.delete(API, "rrsets", self._key(project, zone["name"], rrset["name"], rrset["type"]))
        for rrset in additions:
            self._put_rrset("rrsets", project, zone["name"], rrset)
        change: dict[str, Any] = {
            "id": str(self.store.next_counter(f"dns-change:{project}/{zone['name']}")),
            "startTime": rfc3339(),
            "status": "pending",
            "_doneAt": time.time() + self.env.settings.operation_delay_seconds,
        }
        change.update({k: v for k, v in (("additions", additions), ("deletions", deletions)) if v})
        self._put_change(project, zone["name"], change)
        key = f"{project}/{zone['name']}/{int(change['id']):0{CHANGE_ID_WIDTH}d}"
        self.store.put(API, "pending", key, {"_doneAt": change["_doneAt"]})
        return _change_view(change)

    @staticmethod
    def _checked(rrset: Any, zone: dict[str, Any], field: str) -> dict[str, Any]:
        """A record set of a change, or Cloud DNS's 400 for the first field it cannot take."""
        if not isinstance(rrset, dict):
            raise _required(field)
        name, type_ = rrset.get("name"), rrset.get("type")
        if not name:
            raise _required(f"{field}.name")
        if not str(name).endswith(".") or not rules.in_zone(str(name), zone["dnsName"]):
            raise _invalid(f"{field}.name", name)
        if type_ not in rules.RECORD_TYPES:
            raise _invalid(f"{field}.type", type_)
        if rrset.get("ttl") is None:
            raise _required(f"{field}.ttl")
        ttl = int(rrset["ttl"])
        if ttl < 0:
            raise _invalid(f"{field}.ttl", ttl)
        rrdatas = rrset.get("rrdatas") or []
        if not rrdatas:
            raise _required(f"{field}.rrdata")
        for i, data in enumerate(rrdatas):
            if not _rdata_ok(str(type_), str(data)):
                raise _invalid(f"{field}.rrdata[{i}]", data)
        return _view({"name": rules.fqdn(str(name)), "type": type_, "ttl": ttl, "rrdatas": rrdatas})


def _rdata_ok(type_: str, data: str) -> bool:
    """The address types are checked as addresses; other types are taken as written."""
    if type_ not in ("A", "AAAA"):
        return bool(data.strip())
    try:
        address = ipaddress.ip_address(data)
    except ValueError:
        return False
    return address.version == (4 if type_ == "A" else 6)


def _zone_view(zone: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in zone.items() if not k.startswith("_")}


def _change_view(change: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "dns#change", **{k: v for k, v in change.items() if not k.startswith("_")}}


def _list_page(
    entries: list[tuple[str, Any]], req: Request, kind: str, field: str, view: Callable[[Any], Any]
) -> Response:
    """A Cloud DNS list response: one page of key-ordered entries under `field`, shown by `view`,
    with the token for the next; an empty page has no `field` at all, as Google's JSON omits it."""
    page, token = key_page(entries, req)
    out: dict[str, Any] = {"kind": kind}
    if page:
        out[field] = [view(e) for _, e in page]
    if token:
        out["nextPageToken"] = token
    return Response(200, out)
