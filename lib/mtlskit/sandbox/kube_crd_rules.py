"""The validation rules of the custom resources' CRDs, beyond what a structural schema can say.

The published CRDs carry CEL rules (`x-kubernetes-validations`) the API server evaluates on every write
after the schema's checks: a Gateway's HTTPS listener must name its certificate, an HTTPRoute's Service
backend must have a port, a HealthCheckPolicy's port must match its port specification. The rules a
manifest of the kit or of a person at kubectl can break are stated here, with the CRDs' messages, as
Python predicates over the node at a path (`[]` for every item of a list); `kube_openapi.admit`
refuses an object (422 Invalid) where one is false. They are not published in the schemas: the
sandbox does not speak CEL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (path, the CRD's message, what must hold of the node at the path)
Rule = tuple[str, str, Callable[[Any], bool]]

NO_TLS_PROTOCOLS = ("HTTP", "TCP", "UDP")


def _unique(items: list[Any], key: Callable[[Any], Any]) -> bool:
    keys = [key(i) for i in items]
    return len(keys) == len(set(keys))


def _one_of_type(filters: list[dict[str, Any]], kind: str) -> bool:
    return sum(1 for f in filters if f.get("type") == kind) <= 1


def _port_rules(field: str) -> list[Rule]:
    """Which of port and portName a health check names, by its portSpecification."""
    path = f"spec.default.config.{field}"

    def spec(check: dict[str, Any]) -> str:
        return str(check.get("portSpecification", "USE_SERVING_PORT"))

    return [
        (
            path,
            "for portSpecification being USE_FIXED_PORT, port must be set and portName must be unset",
            lambda c: spec(c) != "USE_FIXED_PORT" or ("port" in c and "portName" not in c),
        ),
        (
            path,
            "for portSpecification being USE_NAMED_PORT, port must be unset and portName must be set",
            lambda c: spec(c) != "USE_NAMED_PORT" or ("port" not in c and "portName" in c),
        ),
        (
            path,
            "port and portName must be unset for portSpecification being USE_SERVING_PORT (which is the default)",
            lambda c: spec(c) != "USE_SERVING_PORT" or ("port" not in c and "portName" not in c),
        ),
    ]


def _filter_rules(field: str, kind: str) -> list[Rule]:
    """A filter's settings field is set exactly when the filter is of its type."""
    path = "spec.rules.[].filters.[]"
    return [
        (
            path,
            f"filter.{field} must be nil if the filter.type is not {kind}",
            lambda f: f.get("type") == kind or field not in f,
        ),
        (
            path,
            f"filter.{field} must be specified for {kind} filter.type",
            lambda f: f.get("type") != kind or field in f,
        ),
    ]


HEALTH_CHECK_TYPES = {
    "TCP": "tcpHealthCheck",
    "HTTP": "httpHealthCheck",
    "HTTPS": "httpsHealthCheck",
    "HTTP2": "http2HealthCheck",
    "GRPC": "grpcHealthCheck",
}

RULES: dict[str, list[Rule]] = {
    "gateways": [
        (
            "spec.listeners",
            "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
            lambda ls: all(not (li.get("protocol") in NO_TLS_PROTOCOLS and "tls" in li) for li in ls),
        ),
        (
            "spec.listeners",
            "tls mode must be Terminate for protocol HTTPS",
            lambda ls: all(
                li.get("protocol") != "HTTPS"
                or (li.get("tls") or {}).get("mode", "Terminate") in ("", "Terminate")
                for li in ls
            ),
        ),
        (
            "spec.listeners",
            "hostname must not be specified for protocols ['TCP', 'UDP']",
            lambda ls: all(not (li.get("protocol") in ("TCP", "UDP") and li.get("hostname")) for li in ls),
        ),
        (
            "spec.listeners",
            "Combination of port, protocol and hostname must be unique for each listener",
            lambda ls: _unique(ls, lambda li: (li.get("port"), li.get("protocol"), li.get("hostname"))),
        ),
        (
            "spec.listeners.[].tls",
            "certificateRefs or options must be specified when mode is Terminate",
            lambda tls: (
                tls.get("mode") != "Terminate" or bool(tls.get("certificateRefs") or tls.get("options"))
            ),
        ),
    ],
    "httproutes": [
        *(
            (
                "spec.rules.[].filters",
                f"{kind} filter cannot be repeated",
                lambda fs, kind=kind: _one_of_type(fs, kind),
            )
            for kind in ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite")
        ),
        *_filter_rules("requestHeaderModifier", "RequestHeaderModifier"),
        *_filter_rules("responseHeaderModifier", "ResponseHeaderModifier"),
        *_filter_rules("extensionRef", "ExtensionRef"),
        (
            "spec.rules.[].backendRefs.[]",
            "Must have port for Service reference",
            lambda ref: (
                ref.get("group", "") != "" or ref.get("kind", "Service") != "Service" or "port" in ref
            ),
        ),
        (
            "spec.rules.[].matches.[].path",
            "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
            lambda p: (
                p.get("type") not in ("Exact", "PathPrefix") or str(p.get("value", "/")).startswith("/")
            ),
        ),
    ],
    "healthcheckpolicies": [
        (
            "spec.default",
            "timeOutSec cannot exceed checkIntervalSec",
            lambda d: (
                not ("checkIntervalSec" in d and "timeoutSec" in d)
                or d["timeoutSec"] <= d["checkIntervalSec"]
            ),
        ),
        (
            "spec.default",
            "when checkIntervalSec is unspecified, timeOutSec cannot exceed 5, which is the default value of "
            "checkIntervalSec",
            lambda d: "checkIntervalSec" in d or d.get("timeoutSec", 5) <= 5,
        ),
        (
            "spec.default",
            "when timeoutSec is unspecified, checkIntervalSec must be at least 5, which is the default value of "
            "timeoutSec",
            lambda d: "timeoutSec" in d or d.get("checkIntervalSec", 5) >= 5,
        ),
        *(
            (
                "spec.default.config",
                f"{field} must be specified for type {kind}",
                lambda c, kind=kind, field=field: c.get("type") != kind or field in c,
            )
            for kind, field in HEALTH_CHECK_TYPES.items()
        ),
        *(rule for field in HEALTH_CHECK_TYPES.values() for rule in _port_rules(field)),
    ],
}
