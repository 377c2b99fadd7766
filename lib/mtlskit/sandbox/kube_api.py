"""The Kubernetes API's HTTP surface for the kinds the kit uses, reached by the official client
through a kubeconfig.

Merge and strategic-merge patches are both applied as merge patches (the kit only patches maps).
Every accepted write is published as an event, so the Ingress controller reconciles before the
response returns.
"""

from __future__ import annotations

from mtlskit.sandbox.events import KUBE_WRITE, Events
from mtlskit.sandbox.kube import KINDS, Kind, KubeObjects
from mtlskit.sandbox.web import ApiError, Request, Response


class KubeApi:
    def __init__(self, objects: KubeObjects, events: Events):
        self.objects = objects
        self.events = events

    def handle(self, req: Request, parts: list[str]) -> Response:
        if parts[:1] == ["version"]:
            return Response(
                200,
                {
                    "major": "1",
                    "minor": "31",
                    "gitVersion": "v1.31.0-mtlskit-sandbox",
                    "platform": "linux/amd64",
                },
            )
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, rest = parts[1], parts[3:]
        else:
            raise ApiError.kube(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"]:
            kind = KINDS[("", "namespaces")]
            return self._dispatch(req, kind, None, rest[1:])
        if not rest or (group, rest[0]) not in KINDS:
            raise ApiError.kube(404, "NotFound", "the server could not find the requested resource")
        return self._dispatch(req, KINDS[(group, rest[0])], namespace, rest[1:])

    def _dispatch(self, req: Request, kind: Kind, namespace: str | None, rest: list[str]) -> Response:
        if not rest:
            if req.method == "GET":
                items = self.objects.list(kind, namespace)
                selector = req.arg("labelSelector")
                if selector:
                    wanted = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
                    items = [
                        i
                        for i in items
                        if all((i["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
                    ]
                rv = self.objects.resource_version()
                return Response(
                    200,
                    {
                        "apiVersion": kind.api_version,
                        "kind": f"{kind.kind}List",
                        "metadata": {"resourceVersion": rv},
                        "items": items,
                    },
                )
            if req.method == "POST":
                result = self.objects.create(kind, namespace, req.json())
                self.events.publish(KUBE_WRITE, kind, result)
                return Response(201, self.objects.get(kind, namespace, result["metadata"]["name"]) or result)
        else:
            name, sub = rest[0], rest[1] if len(rest) > 1 else None
            status_only = sub == "status"
            if req.method == "GET":
                return Response(200, self.objects.require(kind, namespace, name))
            if req.method == "PUT":
                result = self.objects.replace(kind, namespace, name, req.json(), status_only)
            elif req.method == "PATCH":
                ctype = req.headers.get("content-type", "")
                if "json-patch" in ctype:
                    raise ApiError.kube(
                        415,
                        "UnsupportedMediaType",
                        "the sandbox accepts merge and strategic merge patches only",
                    )
                result = self.objects.patch(kind, namespace, name, req.json(), status_only)
            elif req.method == "DELETE":
                result = self.objects.delete(kind, namespace, name)
                self.events.publish(KUBE_WRITE, kind, result)
                if self.objects.get(kind, namespace, name) is None and kind.plural == "services":
                    return Response(200, result)  # the API answers a Service delete with the Service
                if self.objects.get(kind, namespace, name) is None:
                    return Response(
                        200,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "metadata": {},
                            "status": "Success",
                            "details": {"name": name, "kind": kind.plural},
                        },
                    )
                return Response(200, self.objects.get(kind, namespace, name))
            else:
                raise ApiError.kube(405, "MethodNotAllowed", f"{req.method} is not supported")
            self.events.publish(KUBE_WRITE, kind, result)
            return Response(200, self.objects.get(kind, namespace, name) or result)
        raise ApiError.kube(405, "MethodNotAllowed", f"{req.method} is not supported")
