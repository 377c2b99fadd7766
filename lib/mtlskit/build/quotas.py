"""Room under Compute's global quotas for what the kit will create (40_frontend, or gw10 in the Gateway
topology), before anything is created.

Google counts each kind of global resource against a project-wide quota (`projects.get` ->
`quotas[]`: metric, limit, usage). A frontend half built because the forwarding rule hit
FORWARDING_RULES is worse than one never started, so 00_preflight counts the resources the plan would
create (those that do not exist yet) per metric and fails when limit - usage is less.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mtlskit.build import frontend
from mtlskit.cloud.clients import Clients
from mtlskit.config.params import Params
from mtlskit.core import errors
from mtlskit.core.checks import Check
from mtlskit.rules import iam


@dataclass(frozen=True)
class Headroom:
    """One quota metric: how many new resources the plan needs, and the room Compute reports."""

    metric: str
    kinds: str  # the kit's resources it counts: "ForwardingRule mtls-fr"
    needed: int
    limit: float | None  # None: Compute did not list the metric
    usage: float | None

    @property
    def room(self) -> float | None:
        return None if self.limit is None or self.usage is None else self.limit - self.usage

    @property
    def enough(self) -> bool:
        return self.room is None or self.room >= self.needed

    def row(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "resources": self.kinds,
            "new": self.needed,
            "limit": "not listed" if self.limit is None else f"{self.limit:g}",
            "usage": "" if self.usage is None else f"{self.usage:g}",
            "room": "" if self.room is None else f"{self.room:g}",
            "enough": "yes" if self.enough else "NO",
        }


@dataclass
class QuotaReport:
    project: str
    headroom: list[Headroom] = field(default_factory=list)
    problem: str = ""
    problem_fix: str = ""

    def rows(self) -> list[dict[str, Any]]:
        if self.problem:
            return [{"metric": "(not read)", "resources": self.problem}]
        return [h.row() for h in self.headroom]

    def checks(self) -> list[Check]:
        if self.problem:
            return [Check("quota headroom", "fail", f"not read: {self.problem}", self.problem_fix)]
        short = [h for h in self.headroom if not h.enough]
        unlisted = [h for h in self.headroom if h.needed and h.room is None]
        if not short and unlisted:
            names = ", ".join(h.metric for h in unlisted)
            return [
                Check(
                    "quota headroom",
                    "warn",
                    f"not checked: projects.get lists no {names}, which the plan needs",
                    "look the metric up in the console's IAM & Admin > Quotas page before applying",
                )
            ]
        if not short:
            new = sum(h.needed for h in self.headroom)
            return [
                Check("quota headroom", "pass", f"room for the {new} new global resource(s) the plan creates")
            ]
        evidence = "; ".join(
            f"{h.metric}: the plan creates {h.needed} ({h.kinds}) but limit {h.limit:g} - usage {h.usage:g} "
            f"= {h.room:g}"
            for h in short
        )
        fix = " | ".join(iam.quota_fix(self.project, h.metric) for h in short)
        return [Check("quota headroom", "fail", evidence, fix)]


def check_quotas(clients: Clients, params: Params) -> QuotaReport:
    """Read the project's quotas and which frontend resources do not exist yet (reads only)."""
    report = QuotaReport(clients.project)
    try:
        project = clients.call(clients.compute.projects.get, project=clients.project)
        quotas = {str(q.metric): q for q in project.quotas}
        needed: Counter[str] = Counter()
        kinds: dict[str, list[str]] = {}
        for kind in frontend.kit_kinds(params):
            metric = iam.QUOTA_METRICS[kind.collection]
            name = kind.resource_name(params)
            kinds.setdefault(metric, []).append(f"{kind.name} {name}")
            needed[metric] += 0 if kind.get(clients, name) is not None else 1
    except errors.SetupMissing as err:
        report.problem, report.problem_fix = f"{err.what} missing", err.fix
        return report
    except errors.ApiError as err:
        report.problem = err.describe()
        report.problem_fix = (
            "needs compute.projects.get (roles/compute.loadBalancerAdmin or roles/compute.viewer)"
        )
        return report
    for metric, names in kinds.items():
        quota = quotas.get(metric)
        limit = float(quota.limit) if quota is not None else None
        usage = float(quota.usage) if quota is not None else None
        report.headroom.append(Headroom(metric, ", ".join(names), needed[metric], limit, usage))
    return report
