"""The real kubectl against the sandbox: discovery, apply (client- and server-side), get, describe,
delete and namespace deletion, with the Ingress controller creating and collecting backend services.

What is asserted is what a person at a terminal sees (exit codes, output), and through the official
clients what the controller did in Compute.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.api_core import exceptions as gexc

from mtlskit.build import k8s
from mtlskit.cloud.clients import Clients, build_clients
from mtlskit.config.params import Params
from mtlskit.sandbox import process
from tests.conftest import PROJECT, sandbox_params

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("kubectl") is None,
        reason="needs the kubectl binary on PATH (Debian: apt-get install kubernetes-client)",
    ),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Params, Clients, Path]]:
    state = tmp_path_factory.mktemp("kubectl-sandbox")
    params = sandbox_params(
        state,
        stack="kubectl-test",
        kubernetes={"namespace": "printed", "service": "web", "service_port": 8080},
    )
    clients = build_clients(params)
    info = process.SandboxInfo.read(state)
    assert info is not None
    yield params, clients, Path(info.kubeconfig)
    process.stop(state)


def kubectl(
    env: tuple[Params, Clients, Path], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", *args],
        env={**os.environ, "KUBECONFIG": str(env[2])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def app(namespace: str, target_port: int = 8080, **extra_spec: Any) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": namespace,
                "annotations": {"cloud.google.com/neg": '{"ingress": true}'},
            },
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": target_port}],
                **extra_spec,
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "web",
                "namespace": namespace,
                "annotations": {"kubernetes.io/ingress.class": "gce"},
            },
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
        },
    ]


def write(tmp_path: Path, name: str, docs: list[dict[str, Any]]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def backend_names(clients: Clients) -> set[str]:
    return {bs.name for bs in clients.compute.backend_services.list(project=PROJECT)}


def ingress_backends(env: tuple[Params, Clients, Path], namespace: str) -> set[str]:
    ing = json.loads(kubectl(env, "get", "ingress", "web", "-n", namespace, "-o", "json").stdout)
    return set(json.loads(ing["metadata"]["annotations"]["ingress.kubernetes.io/backends"]))


def test_api_resources_lists_the_served_kinds(env: tuple[Params, Clients, Path]) -> None:
    out = kubectl(env, "api-resources").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "ing" in rows["ingresses"] and "networking.k8s.io/v1" in rows["ingresses"]
    assert "cloud.google.com/v1" in rows["backendconfigs"]
    assert {"namespaces", "services", "events", "configmaps"} <= rows.keys()


def test_client_side_apply_get_describe_and_delete(env: tuple[Params, Clients, Path], tmp_path: Path) -> None:
    _, clients, _ = env
    manifest = write(tmp_path, "app.yaml", app("csa"))
    out = kubectl(env, "apply", "-f", manifest).stdout
    assert "namespace/csa created" in out and "ingress.networking.k8s.io/web created" in out
    (backend,) = ingress_backends(env, "csa")
    assert backend.startswith("k8s1-") and backend in backend_names(clients)

    listed = kubectl(env, "get", "ingress", "-A").stdout
    assert any(line.split()[:2] == ["csa", "web"] for line in listed.splitlines())
    as_yaml = yaml.safe_load(kubectl(env, "get", "ingress", "web", "-n", "csa", "-o", "yaml").stdout)
    assert as_yaml["metadata"]["finalizers"] == ["networking.gke.io/ingress-finalizer-V2"]
    described = kubectl(env, "describe", "ingress", "web", "-n", "csa").stdout
    assert f'Created backend service "{backend}"' in described and "web:80" in described

    changed = kubectl(env, "apply", "-f", write(tmp_path, "app2.yaml", app("csa", target_port=9090))).stdout
    assert "service/web configured" in changed and "ingress.networking.k8s.io/web unchanged" in changed
    svc = clients.kube.core.read_namespaced_service("web", "csa")
    assert [(p.port, p.target_port) for p in svc.spec.ports] == [(80, 9090)]

    without_namespace = write(tmp_path, "objects.yaml", app("csa")[1:])
    deleted = kubectl(env, "delete", "-f", without_namespace).stdout
    assert 'service "web" deleted' in deleted and 'ingress.networking.k8s.io "web" deleted' in deleted
    assert backend not in backend_names(clients)
    with pytest.raises(gexc.NotFound):
        clients.compute.backend_services.get(project=PROJECT, backend_service=backend)


def test_server_side_apply_creates_updates_and_records_the_manager(
    env: tuple[Params, Clients, Path], tmp_path: Path
) -> None:
    _, clients, _ = env
    out = kubectl(env, "apply", "--server-side", "-f", write(tmp_path, "ssa.yaml", app("ssa"))).stdout
    assert out.count("serverside-applied") == 3
    (backend,) = ingress_backends(env, "ssa")
    assert backend in backend_names(clients)
    again = kubectl(env, "apply", "--server-side", "-f", write(tmp_path, "ssa2.yaml", app("ssa", 9090)))
    assert "service/web serverside-applied" in again.stdout
    svc = json.loads(
        kubectl(env, "get", "svc", "web", "-n", "ssa", "-o", "json", "--show-managed-fields").stdout
    )
    assert svc["spec"]["ports"][0]["targetPort"] == 9090
    assert {(m["manager"], m["operation"]) for m in svc["metadata"]["managedFields"]} == {
        ("kubectl", "Apply")
    }

    bad = kubectl(
        env,
        "apply",
        "--server-side",
        "-f",
        write(tmp_path, "bad.yaml", app("ssa", portz=1)[1:2]),
        check=False,
    )
    assert bad.returncode != 0 and 'strict decoding error: unknown field "spec.portz"' in bad.stderr


def test_client_side_apply_rejects_unknown_fields(env: tuple[Params, Clients, Path], tmp_path: Path) -> None:
    kubectl(env, "create", "namespace", "strict")
    bad = kubectl(env, "apply", "-f", write(tmp_path, "bad.yaml", app("strict", portz=1)[1:2]), check=False)
    assert bad.returncode == 1 and 'unknown field "spec.portz"' in bad.stderr


def test_deleting_a_namespace_runs_the_ingress_finalizer_and_collects_the_backend(
    env: tuple[Params, Clients, Path], tmp_path: Path
) -> None:
    _, clients, _ = env
    kubectl(env, "apply", "-f", write(tmp_path, "gone.yaml", app("gone")))
    (backend,) = ingress_backends(env, "gone")
    assert backend in backend_names(clients)
    assert 'namespace "gone" deleted' in kubectl(env, "delete", "namespace", "gone").stdout
    missing = kubectl(env, "get", "namespace", "gone", check=False)
    assert missing.returncode == 1 and "NotFound" in missing.stderr
    assert backend not in backend_names(clients)


def test_the_kits_printed_kubectl_commands_run_as_printed(env: tuple[Params, Clients, Path]) -> None:
    params, clients, _ = env
    changes = k8s.plan_ingress(clients, params)
    commands = [c.gcloud for c in changes if c.gcloud.startswith("kubectl ")]
    assert len(commands) == len(changes) >= 4, [c.gcloud for c in changes]
    for command in commands:
        kubectl(env, *shlex.split(command)[1:])
    ns = params.kubernetes.namespace
    assert clients.kube.core.read_namespace(ns).status.phase == "Active"
    assert clients.kube.core.read_namespaced_service(params.kubernetes.service, ns)
    backends = k8s.wait_for_backends(clients, params, timeout=10)
    assert set(backends) <= backend_names(clients) and backends
    assert [c.action for c in k8s.plan_ingress(clients, params)] == ["no change"] * (len(changes) - 1)
