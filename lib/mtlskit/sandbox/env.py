"""What every emulator shares besides the store: the sandbox's settings, its fault switch, and the
facts about the simulated project and cluster that are kept in the store's meta table.

Emulators receive an `Env` instead of the server object, so none of them can reach another
emulator's methods: they meet only in the store (and in `events`).
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mtlskit.sandbox.state import Store
from mtlskit.sandbox.web import ApiError

DEFAULT_PROJECT = "mtlskit-sandbox"


@dataclass(frozen=True)
class Settings:
    """Timings and ports, always given by whoever starts the sandbox (the params hold the defaults)."""

    operation_delay_seconds: float
    managed_cert_delay_seconds: float
    data_plane_port: int
    # Refusals to practise with (`mtlskit.sandbox.access`): permissions the caller lacks, quota
    # metrics used up. Changed at run time through `/_sandbox/access`.
    withhold_permissions: tuple[str, ...] = ()
    exhaust_quota: tuple[str, ...] = ()
    # The simulated cluster's Gateway API CRD bundle (`kube_crds`): v1.5, v1.4, v1.3, or none (the
    # Gateway API not enabled). Changed at run time through `/_sandbox/cluster`.
    gateway_api: str = "none"
    # How long a change to a trust config, a server TLS policy or a proxy's serverTlsPolicy takes to
    # reach the data plane (`dataplane.Propagation`); 0: the next connection. Changed at run time
    # through `/_sandbox/dataplane`.
    propagation_delay_seconds: float = 0.0


@dataclass
class Faults:
    """Answer a share of Google API requests with 429/503, or make operations end in an error."""

    error_rate: float = 0.0
    operation_error_rate: float = 0.0
    statuses: list[int] = field(default_factory=lambda: [429, 503])
    seed: int | None = None
    apis: list[str] = field(
        default_factory=lambda: ["compute", "networksecurity", "certificatemanager", "logging"]
    )

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def request_fault(self, api: str) -> int | None:
        if api not in self.apis or self.error_rate <= 0:
            return None
        with self._lock:
            if self._rng.random() < self.error_rate:
                return self._rng.choice(self.statuses)
        return None

    def operation_should_fail(self) -> bool:
        if self.operation_error_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.operation_error_rate

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Change the switch in place: every emulator holds this one object."""
        unknown = set(changes) - set(self.describe())
        if unknown:
            raise ApiError.google(400, f"unknown fault settings: {sorted(unknown)}")
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)
            self._rng = random.Random(self.seed)


@dataclass
class Env:
    store: Store
    settings: Settings
    state_dir: Path
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def open(cls, state_dir: Path, settings: Settings, projects: list[str]) -> Env:
        """Open (or create) the state under `state_dir` and register `projects` as served."""
        state_dir.mkdir(parents=True, exist_ok=True)
        env = cls(Store(state_dir / "state.sqlite"), settings, state_dir)
        store = env.store
        if store.meta("cluster_uid") is None:
            store.set_meta("cluster_uid", secrets.token_hex(8))
        known = env.projects
        known += [p for p in projects if p not in known]
        store.set_meta("projects", json.dumps(known or [DEFAULT_PROJECT]))
        if store.meta("cluster_project") is None:
            store.set_meta("cluster_project", env.projects[0])
        return env

    @property
    def cluster_uid(self) -> str:
        return self.store.meta("cluster_uid") or ""

    @property
    def cluster_project(self) -> str:
        return self.store.meta("cluster_project") or DEFAULT_PROJECT

    @property
    def projects(self) -> list[str]:
        return list(json.loads(self.store.meta("projects", "[]") or "[]"))

    def add_project(self, project: str) -> None:
        if project not in self.projects:
            self.store.set_meta("projects", json.dumps([*self.projects, project]))

    def require_project(self, project: str, api: str) -> None:
        """Compute says 404 for an unknown project; the location-based APIs say 403."""
        if project not in self.projects:
            if api == "compute":
                raise ApiError.compute(404, f"The resource 'projects/{project}' was not found", "notFound")
            raise ApiError.google(
                403,
                f"Permission denied on resource project {project} (the sandbox serves "
                f"{', '.join(self.projects)}).",
                status_name="PERMISSION_DENIED",
            )

    def allocate_ip(self) -> str:
        """A fresh 127.x address, so each forwarding rule can get its own loopback listener."""
        n = self.store.next_counter("loopback-ip")
        # A per-sandbox /16 (from the cluster uid), so two sandboxes on one machine never share an
        # address: each binds its data plane listeners on its own IPs.
        uid = bytes.fromhex(self.cluster_uid[:4])
        base = ipaddress.ip_address(f"127.{16 + uid[0] % 200}.{uid[1]}.0")
        return str(base + n)
