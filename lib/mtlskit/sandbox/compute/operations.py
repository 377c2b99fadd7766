"""Compute's global operations: every mutation is applied at once and reported through an operation
that moves PENDING -> RUNNING -> DONE over the configured delay, so the kit's waits are real waits.

A `requestId` replays the first operation instead of applying the change twice, as Compute does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mtlskit.sandbox.compute.lists import ZONE, no_results, paged
from mtlskit.sandbox.compute.resources import API, BASE, key_of, not_found, public, self_link
from mtlskit.sandbox.env import Env
from mtlskit.sandbox.web import ApiError, Request, Response, new_id, rfc3339


class Operations:
    def __init__(self, env: Env):
        self.env = env
        self.store = env.store

    def replay(self, req: Request, project: str) -> Response | None:
        """The operation an earlier request with the same requestId started, if any."""
        rid = req.arg("requestId")
        if not rid:
            return None
        op_key = self.store.meta(f"compute-request:{project}:{rid}")
        if op_key:
            op = self.store.get(API, "operations", op_key if "/" in op_key else key_of(project, op_key))
            if op:
                return Response(200, self.render(op))
        return None

    def mutate(
        self,
        req: Request,
        project: str,
        kind: str,
        target: tuple[str, str, str | None],
        change: Callable[[], Any],
    ) -> Response:
        """Apply `change` unless the fault switch fails this operation; answer with the operation.

        `target` is (collection, name, zone) of the resource the operation reports on."""
        fail = self.env.faults.operation_should_fail()
        coll, name, zone = target
        before = self.store.get(API, coll, key_of(project, name, zone))
        result = None if fail else change()
        # The operation names the resource by id, whether it was made (the result) or is gone (before).
        target_id = (result if isinstance(result, dict) else before or {}).get("id")
        op = self.start(
            project, kind, self_link(project, coll, name, zone), target_id, failed=fail, zone=zone
        )
        rid = req.arg("requestId")
        if rid:
            self.store.set_meta(f"compute-request:{project}:{rid}", key_of(project, op["name"], zone))
        return Response(200, self.render(op))

    def start(
        self,
        project: str,
        kind: str,
        target_link: str,
        target_id: str | None,
        failed: bool = False,
        zone: str | None = None,
    ) -> dict[str, Any]:
        """A new operation: global, or zonal (with `zone`) for a change to a zonal resource, as Compute
        reports a network endpoint group's insert under `zones/<zone>/operations`."""
        name = f"operation-{int(time.time() * 1000)}-{new_id()[:12]}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": new_id(),
            "name": name,
            "operationType": kind,
            "targetLink": target_link,
            "user": "sandbox@mtlskit.local",
            "insertTime": rfc3339(compute=True),
            "startTime": rfc3339(compute=True),
            "selfLink": f"{BASE}projects/{project}/{f'zones/{zone}' if zone else 'global'}/operations/{name}",
            "_created": time.time(),
        }
        if zone:
            op["zone"] = f"{BASE}projects/{project}/zones/{zone}"
        if target_id:
            op["targetId"] = target_id
        if failed:
            op["_fail"] = True
        self.store.put(API, "operations", key_of(project, name, zone), op)
        return op

    def render(self, op: dict[str, Any]) -> dict[str, Any]:
        out = public(op)
        elapsed = time.time() - op["_created"]
        delay = self.env.settings.operation_delay_seconds
        if elapsed >= delay:
            out.update(status="DONE", progress=100, endTime=rfc3339(compute=True))
            if op.get("_fail"):
                msg = "Internal error. Please try again or contact Google Support."
                out["error"] = {"errors": [{"code": "INTERNAL_ERROR", "message": msg}]}
                out["httpErrorStatusCode"] = 503
                out["httpErrorMessage"] = "SERVICE UNAVAILABLE"
        elif elapsed >= delay / 2:
            out.update(status="RUNNING", progress=50)
        else:
            out.update(status="PENDING", progress=0)
        return out

    def _all(self, project: str) -> list[tuple[str, dict[str, Any]]]:
        """Every operation of the project, as (scope, operation): `global` or `zones/<zone>`."""
        out = []
        for key, op in self.store.list(API, "operations", f"{project}/"):
            parts = key.split("/")
            out.append(("global" if len(parts) == 2 else f"zones/{parts[1]}", self.render(op)))
        return out

    def aggregated(self, req: Request, project: str) -> Response:
        """`aggregated/operations`: global and zonal operations keyed by scope, paged like every Compute
        list; a scope with none on the page carries the NO_RESULTS_ON_PAGE warning."""
        body, page = paged(req, f"projects/{project}/aggregated/operations", self._all(project))
        items: dict[str, Any] = {scope: no_results(scope) for scope in ("global", f"zones/{ZONE}")}
        for scope, op in page:
            if "warning" in items.get(scope, {}):
                items[scope] = {"operations": []}
            items.setdefault(scope, {"operations": []})["operations"].append(op)
        return Response(200, {**body, "items": items})

    def handle(self, req: Request, project: str, rest: list[str], zone: str | None = None) -> Response:
        """list, get, wait and delete on `.../global|zones/<zone>/operations[/{name}[/wait]]`."""
        verb = req.method_id.rsplit(".", 1)[-1]
        scope = f"zones/{zone}" if zone else "global"
        if not rest and verb == "list":
            ops = [op for s, op in self._all(project) if s == scope]
            body, page = paged(req, f"projects/{project}/{scope}/operations", ops)
            return Response(200, {**body, **({"items": page} if page else {})})
        if not rest or len(rest) > 2 or verb not in ("get", "delete", "wait"):
            raise ApiError.unknown_method(req.path)
        op = self.store.get(API, "operations", key_of(project, rest[0], zone))
        if op is None:
            raise not_found(project, "operations", rest[0], zone)
        if verb == "wait":
            # Real wait blocks up to two minutes; ours waits for the operation's own delay.
            remaining = op["_created"] + self.env.settings.operation_delay_seconds - time.time()
            if remaining > 0:
                time.sleep(min(remaining, 120))
            return Response(200, self.render(op))
        if verb == "delete":
            self.store.delete(API, "operations", key_of(project, rest[0], zone))
            return Response(200, {})  # an empty Delete<Global|Zone>OperationResponse, as Google answers
        return Response(200, self.render(op))
