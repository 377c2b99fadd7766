"""A certificate or key file that a params file names, with the field that names it and its role.

It lives beside the lint, not with the params, because the lint and the demo PKI judge files by
role, and the params only list them: the configuration layer depends on the PKI, never the reverse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

FileRole = Literal[
    "trust anchor",
    "intermediate",
    "allowlisted",
    "client",
    "client key",
    "probe case",
    "probe case key",
    "kubeconfig",
]

# A PEM private key block of any kind (PKCS#8, RSA, EC, encrypted), to its end or to the end of the
# text: what must never leave the machine in an output, a record or a report.
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|\Z)", re.DOTALL
)

# The trust config's three roles, each with the params field that lists its certificate files, in the
# order the trust config holds them.
TRUST_FIELDS: dict[FileRole, str] = {
    "trust anchor": "mtls.trust_anchors",
    "intermediate": "mtls.intermediates",
    "allowlisted": "mtls.allowlisted",
}


@dataclass(frozen=True)
class ParamsFile:
    """A file the params name: where (the field path), which file, and what it is for."""

    field: str
    path: Path
    role: FileRole


class NamedFiles(Protocol):
    """What the lint needs of an environment: the files it names and how far ahead expiry warns."""

    expiry_horizon_days: int

    def files(self) -> list[ParamsFile]: ...
