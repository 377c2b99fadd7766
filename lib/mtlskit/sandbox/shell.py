"""Point a person's shell at the sandbox: the real Google Cloud CLI and kubectl, as the runbook's
equivalent commands are typed.

gcloud gets a configuration directory of its own inside the state directory (`CLOUDSDK_CONFIG`),
so the person's real accounts, projects and overrides are never read or changed, and leaving the
shell (or unsetting the variable) is the whole undo. The directory is written as files rather than
with `gcloud config set`: that works without gcloud installed, is idempotent, and avoids the
"universe domain" warning gcloud prints for every loopback override it is asked to set.

Endpoint override forms (checked with Google Cloud CLI 528; every override must end with '/'):
compute takes the root with its version path (`http://127.0.0.1:PORT/compute/v1/`, or the bare root
`http://127.0.0.1:PORT/`, to which gcloud adds `compute/v1/`); the other APIs take the bare root
only (gcloud adds `v1/` or `v2/` itself, so `.../v1/` ends up requesting `/v1/v1/...`).
"""

from __future__ import annotations

import configparser
import io
import os
import shlex
import tempfile
from pathlib import Path

GCLOUD_DIR = "gcloud"
CONFIGURATION = "mtlskit-sandbox"

# `api_endpoint_overrides/<api>` -> the path under the sandbox's root that serves that API.
ENDPOINT_PATHS = {
    "compute": "compute/v1/",
    "networksecurity": "",
    "certificatemanager": "",
    "logging": "",
    "serviceusage": "",
    "dns": "",  # gcloud dns record-sets ..., the cut-over's by-hand commands
}

# Variables that outrank a configuration's properties: set in the person's shell, they would send
# the sandbox's gcloud to another configuration, project or endpoint.
OVERRIDING_VARIABLES = (
    "CLOUDSDK_ACTIVE_CONFIG_NAME",
    "CLOUDSDK_CORE_PROJECT",
    "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE",
    "CLOUDSDK_AUTH_DISABLE_CREDENTIALS",
    *(f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}" for api in ENDPOINT_PATHS),
)


def gcloud_properties(endpoint: str, project: str) -> dict[str, dict[str, str]]:
    """The gcloud properties, by section, that make every API the runbook reads answer from the
    sandbox: no credentials (the sandbox asks for none, and a real token must never reach it), the
    sandbox's project, and the APIs' endpoints."""
    root = endpoint.rstrip("/") + "/"
    return {
        "core": {"project": project, "disable_usage_reporting": "true"},
        "auth": {"disable_credentials": "true"},
        "component_manager": {"disable_update_check": "true"},
        "survey": {"disable_prompts": "true"},
        "api_endpoint_overrides": {api: root + path for api, path in ENDPOINT_PATHS.items()},
    }


def write_gcloud_config(state_dir: Path, endpoint: str, project: str) -> Path:
    """Write (or refresh: the sandbox may listen on another port after a restart) the gcloud
    configuration directory for this sandbox; returns the directory for `CLOUDSDK_CONFIG`."""
    directory = Path(state_dir).resolve() / GCLOUD_DIR
    parser = configparser.ConfigParser()
    parser.read_dict(gcloud_properties(endpoint, project))
    text = io.StringIO()
    parser.write(text)
    _write_if_changed(directory / "configurations" / f"config_{CONFIGURATION}", text.getvalue())
    _write_if_changed(directory / "active_config", CONFIGURATION)
    return directory


def _write_if_changed(path: Path, text: str) -> None:
    """Atomic, and untouched when already right, so a running gcloud never reads a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text() == text:
        return
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def exports(gcloud_config: Path, kubeconfig: str, endpoint: str, dns_port: int = 0) -> str:
    """The lines `eval "$(mtlskit sandbox env)"` runs: POSIX shell, values quoted. Loopback joins
    the shell's proxy exceptions, so a corporate HTTP(S)_PROXY never receives the sandbox's calls.
    The DNS responder needs no variable (dig is told the server): a comment says how to ask it."""
    dig = [f"# its DNS responder: dig @127.0.0.1 -p {dns_port} NAME"] if dns_port else []
    return "\n".join(
        [
            f"# mtlskit sandbox at {endpoint}: gcloud and kubectl in this shell now talk to it",
            *dig,
            f"export CLOUDSDK_CONFIG={shlex.quote(str(gcloud_config))}",
            f"export KUBECONFIG={shlex.quote(kubeconfig)}",
            f"unset {' '.join(OVERRIDING_VARIABLES)}",
            'export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"',
            'export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"',
        ]
    )
