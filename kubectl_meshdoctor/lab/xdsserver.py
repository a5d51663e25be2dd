"""The lab's xDS server: REST-JSON discovery for every healthy lab Envoy, keyed by node id.

Envoy's REST subscription posts a DiscoveryRequest (with its node) to `/v3/discovery:<type>` and takes
the DiscoveryResponse JSON. One aiohttp server on the lab's loop answers all Envoys, so no watched
files (and no inotify instances) are needed however many Envoys run. See xds.py for why.
"""

from __future__ import annotations

import json

from aiohttp import web

from kubectl_meshdoctor.lab.xds import T_CLUSTER, T_LISTENER, T_ROUTE, T_SECRET, SidecarResources

_TYPES = {"clusters": T_CLUSTER, "listeners": T_LISTENER, "routes": T_ROUTE, "secrets": T_SECRET}


class XdsRestServer:
    def __init__(self, version: str = "2026-11-20T09:00:00Z/1"):
        self.version = version
        self._by_node: dict[str, SidecarResources] = {}
        self._secrets: dict[str, dict[str, dict]] = {}  # node id -> secret name -> Secret (SDS)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def register(self, node_id: str, resources: SidecarResources) -> None:
        self._by_node[node_id] = resources

    def register_secrets(self, node_id: str, secrets: list[dict]) -> None:
        """The SDS secrets of one sidecar (its workload certificate and roots), asked by name."""
        self._secrets[node_id] = {secret["name"]: secret for secret in secrets}

    def registered_secrets(self) -> list[dict]:
        return [secret for secrets in self._secrets.values() for secret in secrets.values()]

    def registered(self) -> list[SidecarResources]:
        """Every sidecar's resources, to amend before its Envoy first asks (lab/remote_endpoints.py)."""
        return list(self._by_node.values())

    def registered_for(self, node_id: str) -> SidecarResources | None:
        """One sidecar's resources, to amend before its Envoy first asks (lab/crosscluster.py)."""
        return self._by_node.get(node_id)

    async def _discovery(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        type_url = _TYPES.get(kind)
        if type_url is None:
            return web.Response(status=404, text=f"no such discovery type {kind}")
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return web.Response(status=400, text="DiscoveryRequest is not JSON")
        node = ((body.get("node") or {}).get("id")) or ""
        if kind == "secrets":
            return self._secrets_response(node, body)
        resources = self._by_node.get(node)
        if resources is None:
            return web.Response(status=404, text="unknown node")
        if kind == "clusters":
            items = resources.clusters
        elif kind == "listeners":
            items = resources.listeners
        else:
            items = _asked(body, resources.routes)
        return web.json_response({"version_info": self.version, "resources": items, "type_url": type_url})

    def _secrets_response(self, node: str, body: dict) -> web.Response:
        secrets = self._secrets.get(node)
        if secrets is None:
            return web.Response(status=404, text="unknown node")
        items = _asked(body, secrets)
        return web.json_response({"version_info": self.version, "resources": items, "type_url": T_SECRET})

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v3/discovery:{kind}", self._discovery)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _asked(body: dict, named: dict[str, dict]) -> list[dict]:
    """The resources a DiscoveryRequest names (all of them when it names none), in its order."""
    names = body.get("resource_names") or body.get("resourceNames") or list(named)
    return [named[name] for name in names if name in named]
