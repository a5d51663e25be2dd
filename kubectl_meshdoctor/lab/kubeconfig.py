"""Kubeconfig files pointing at the lab's API server.

Both kubectl and the official Python client find the lab the way they find a real cluster: through a
kubeconfig with the CA inline and a bearer token (kubectl refuses to send a token over plain HTTP, which
is why the lab serves HTTPS at all).
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

LAB_USER = "meshdoctor-lab"


def kubeconfig_document(server_url: str, ca_pem: bytes, token: str, *, context: str = "meshdoctor-lab",
                        namespace: str | None = None) -> dict:
    context_body: dict[str, str] = {"cluster": context, "user": LAB_USER}
    if namespace:
        context_body["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {
            "server": server_url,
            "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
        }}],
        "users": [{"name": LAB_USER, "user": {"token": token}}],
        "contexts": [{"name": context, "context": context_body}],
        "current-context": context,
        "preferences": {},
    }


def write_kubeconfig(path: str | Path, document: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    # Holds a bearer token: keep it private like a real kubeconfig.
    path.chmod(0o600)
    return path
