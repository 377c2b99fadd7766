"""Hands-on labs on the sandbox: `from mtlskit.teach import labs` is the one import a lab notebook needs.

Each lab has a setup call, actions a trainee takes (each also printed as the kubectl, gcloud or curl
command that does the same by hand), and checks that return a `Verdict` (a table and one line: right,
or not yet with a hint). `REFERENCE` holds the answers CI fills in.
"""

from __future__ import annotations

from mtlskit.teach.labs import anchor, certificates, chain, enforcement, gateway, modes, outage, rotation
from mtlskit.teach.labs.anchor import delete_anchor, restore_anchor
from mtlskit.teach.labs.chain import allowlist_leaf, reissue_intermediate
from mtlskit.teach.labs.lab import (
    Lab,
    LabRefused,
    LabTimedOut,
    Verdict,
    faults_command,
    put_back,
    set_faults,
    set_propagation_delay,
    start_lab,
    state_frame,
)
from mtlskit.teach.labs.modes import switch_mode
from mtlskit.teach.labs.reference import REFERENCE

LABS = (
    certificates.NAME,
    anchor.NAME,
    modes.NAME,
    chain.NAME,
    outage.NAME,
    gateway.NAME,
    rotation.NAME,
    enforcement.NAME,
)

__all__ = [
    "LABS",
    "REFERENCE",
    "Lab",
    "LabRefused",
    "LabTimedOut",
    "Verdict",
    "allowlist_leaf",
    "anchor",
    "certificates",
    "chain",
    "delete_anchor",
    "enforcement",
    "faults_command",
    "gateway",
    "modes",
    "outage",
    "put_back",
    "reissue_intermediate",
    "restore_anchor",
    "rotation",
    "set_faults",
    "set_propagation_delay",
    "start_lab",
    "state_frame",
    "switch_mode",
]
