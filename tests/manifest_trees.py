"""A small repository tree with two mistakes in one multi-document file, beside files that are no manifests.

Shared by the SARIF tests (CliRunner) and the real-kubectl tests. The expected lines are found by
scanning the text written here, not by the loader under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

APP = """\
# The shop: four documents; the second and the fourth are wrong.
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: shop
spec:
  selector: {app: reviews}
  ports:
  - name: http
    port: 9080
---
apiVersion: v1
kind: Service
metadata:
  name: legacy
  namespace: shop
spec:
  ports:
  - name: custom-port
    port: 7000
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
---
# the canary route names a subset the DestinationRule lacks
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v3}
      weight: 10
"""
HELM_TEMPLATE = "{{- if .Values.enabled }}\napiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n{{- end }}\n"


@dataclass(frozen=True)
class AppTree:
    root: Path  # the directory to analyse
    app: Path  # the multi-document file with the mistakes
    legacy_line: int  # where Service shop/legacy starts (MD0502, a warning)
    virtual_service_line: int  # where VirtualService shop/reviews starts (MD0501, an error)
    skipped: tuple[str, ...]  # files under root that are no manifests, relative to root


def write_app_tree(root: Path) -> AppTree:
    (root / "chart" / "templates").mkdir(parents=True)
    (root / "data").mkdir()
    app = root / "app.yaml"
    app.write_text(APP)
    (root / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: shop\nversion: 0.1.0\n")
    (root / "chart" / "templates" / "service.yaml").write_text(HELM_TEMPLATE)
    (root / "data" / "ratings.json").write_text(json.dumps({"ratings": [5, 4]}))
    (root / "README.md").write_text("# shop\n")
    lines = APP.splitlines()
    return AppTree(
        root=root,
        app=app,
        legacy_line=lines.index("  name: legacy") - 2,  # apiVersion, kind, metadata, then the name
        virtual_service_line=lines.index("kind: VirtualService"),  # the apiVersion line just above it
        skipped=("chart/Chart.yaml", "chart/templates/service.yaml", "data/ratings.json"),
    )
