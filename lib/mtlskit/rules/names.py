"""Name rules of the APIs the kit talks to, each with the sentence that explains it to a user.

A `NameRule` pairs the pattern with its human description so that a refused name always comes with
what would have been accepted, whether the refusal comes from params validation or from the sandbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class NameRule:
    """One naming rule: the pattern a name must match fully, and what that means in words."""

    pattern: re.Pattern[str]
    description: str
    max_length: int | None = None

    def matches(self, value: object) -> bool:
        """True when `value` is a string the API accepts under this rule."""
        if not isinstance(value, str):
            return False
        if self.max_length is not None and len(value) > self.max_length:
            return False
        return self.pattern.fullmatch(value) is not None

    def problem(self, value: object) -> str | None:
        """None when `value` is accepted, otherwise "must be <description>"."""
        return None if self.matches(value) else f"must be {self.description}"


# Compute Engine resource names (addresses, URL maps, proxies, forwarding rules, SSL policies...).
GOOGLE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# Kubernetes object names: Services and Namespaces are labels, most other kinds are subdomains.
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Kubernetes label values (may be empty in the API; the kit needs a non-empty selector value).
K8S_LABEL_VALUE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61}[A-Za-z0-9]|[A-Za-z0-9])$")
# Network Security ids (serverTlsPolicies): letters, digits, hyphens, underscores, no leading digit.
NETSEC_ID = re.compile(r"^[A-Za-z_-][A-Za-z0-9_-]{0,62}$")
# Certificate Manager ids (trustConfigs).
CERTMGR_ID = re.compile(r"^[a-z0-9-]{1,63}$")
PROJECT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# RFC 7230 token.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

# Request headers the global external Application Load Balancer refuses as custom headers.
FORBIDDEN_HEADER_PREFIXES = ("x-google", "x-goog-", "x-gfe", "x-amz-")
FORBIDDEN_HEADERS = frozenset(
    {
        "x-user-ip",
        "cdn-loop",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

GOOGLE_RESOURCE = NameRule(
    GOOGLE_NAME,
    "a Google resource name: 1-63 chars, lowercase letters, digits and '-', "
    "starting with a letter and not ending with '-' (RFC 1035)",
)
KUBERNETES_LABEL = NameRule(
    DNS1123_LABEL,
    "a Kubernetes DNS-1123 label: 1-63 chars, lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
)
KUBERNETES_SUBDOMAIN = NameRule(
    DNS1123_SUBDOMAIN,
    "a Kubernetes DNS-1123 subdomain: at most 253 chars of lowercase letters, digits, '-' and '.', "
    "each part starting and ending with a letter or digit",
    max_length=253,
)
KUBERNETES_LABEL_VALUE = NameRule(
    K8S_LABEL_VALUE,
    "a Kubernetes label value: 1-63 letters, digits, '-', '_' or '.', alphanumeric at both ends",
)
SERVER_TLS_POLICY_ID = NameRule(
    NETSEC_ID, "a server TLS policy id: 1-63 letters, digits, '-' or '_', not starting with a digit"
)
TRUST_CONFIG_ID = NameRule(CERTMGR_ID, "a trust config id: 1-63 chars of lowercase letters, digits and '-'")
PROJECT = NameRule(
    PROJECT_ID,
    "a Google Cloud project id: 6-30 chars, lowercase letters, digits and '-', "
    "starting with a letter and not ending with '-'",
)
DOMAIN_NAME = NameRule(
    DOMAIN, "a fully qualified domain name in lowercase (e.g. api.example.com), at most 253 chars"
)
# Cloud DNS managed zone names.
DNS_ZONE = NameRule(
    re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"),
    "a Cloud DNS zone name: 1-63 lowercase letters, digits or dashes, starting with a letter and "
    "ending with a letter or digit",
    63,
)
HEADER = NameRule(HEADER_NAME, "an RFC 7230 header name (letters, digits and !#$%&'*+.^_`|~-)")


def header_problem(name: str) -> str | None:
    """Why the load balancer would refuse `name` as a custom request header name, or None."""
    if not HEADER.matches(name):
        return f"{name!r} is not an RFC 7230 header name"
    low = name.lower()
    if low in FORBIDDEN_HEADERS or low.startswith(FORBIDDEN_HEADER_PREFIXES):
        return f"{name!r} is a header name the load balancer reserves"
    return None
