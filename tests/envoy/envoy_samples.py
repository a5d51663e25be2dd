"""Synthetic, Istio-shaped Envoy outputs for the envoy parser tests, fuzzing and the speed script."""

from __future__ import annotations

import copy
import json
import typing

ADMIN_V3 = "type.googleapis.com/envoy.admin.v3."
ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    "%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)

RAW_BUFFER = {
    "name": "envoy.transport_sockets.raw_buffer",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
}


def istio_tls_socket(sni: str = "outbound_.9080_._.reviews.default.svc.cluster.local", *, alpn: bool = True) -> dict:
    common: dict[str, typing.Any] = {
        "tls_certificate_sds_secret_configs": [{"name": "default"}],
        "combined_validation_context": {
            "default_validation_context": {"match_subject_alt_names": [{"exact": "spiffe://cluster.local/ns/default/sa/x"}]},
            "validation_context_sds_secret_config": {"name": "ROOTCA"},
        },
    }
    if alpn:
        common["alpn_protocols"] = ["istio-peer-exchange", "istio"]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": common,
            "sni": sni,
        },
    }


def simple_tls_socket(sni: str = "api.example.com") -> dict:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {"validation_context": {"trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"}}},
            "sni": sni,
        },
    }


def eds_cluster(name: str) -> dict:
    """A normal outbound cluster: TLS chosen per endpoint by the tlsMode label."""
    return {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}, "service_name": name},
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_retries": 4294967295}]},
        "metadata": {"filter_metadata": {"istio": {"services": [{"host": name.split("|")[-1], "namespace": "default"}]}}},
        "transport_socket_matches": [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": istio_tls_socket()},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": copy.deepcopy(RAW_BUFFER)},
        ],
    }


def headless_cluster(name: str, transport_socket: dict | None) -> dict:
    cluster = {"name": name, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "10s"}
    if transport_socket is not None:
        cluster["transport_socket"] = transport_socket
    return cluster


def access_log(path: str = "/dev/stdout") -> list[dict]:
    return [{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": {"text_format_source": {"inline_string": ISTIO_TEXT_FORMAT}},
        },
    }]


def http_listener(name: str, *, rds: str | None = None, inline_route: dict | None = None, with_access_log: bool = True) -> dict:
    hcm: dict[str, typing.Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": f"outbound_{name}",
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    if rds is not None:
        hcm["rds"] = {"config_source": {"ads": {}}, "route_config_name": rds}
    if inline_route is not None:
        hcm["route_config"] = inline_route
    if with_access_log:
        hcm["access_log"] = access_log()
    return {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": int(name.rsplit("_", 1)[-1])}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
        "traffic_direction": "OUTBOUND",
    }


def tcp_listener(name: str, cluster: str | None = None, weighted: list[str] | None = None, *, with_access_log: bool = False) -> dict:
    tcp: dict[str, typing.Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": cluster or "weighted",
    }
    if cluster:
        tcp["cluster"] = cluster
    if weighted:
        tcp["weighted_clusters"] = {"clusters": [{"name": n, "weight": 1} for n in weighted]}
    if with_access_log:
        tcp["access_log"] = access_log()
    return {
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": int(name.rsplit("_", 1)[-1])}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp}]}],
    }


def route_config(name: str, hosts: dict[str, list[typing.Any]]) -> dict:
    """``hosts`` maps a virtual host to its routes' targets: a cluster name or a list (weighted)."""
    virtual_hosts = []
    for host, targets in hosts.items():
        routes = []
        for target in targets:
            if isinstance(target, list):
                action = {"weighted_clusters": {"clusters": [{"name": n, "weight": 100 // len(target)} for n in target]}}
            else:
                action = {"cluster": target, "timeout": "0s"}
            routes.append({"match": {"prefix": "/"}, "route": action})
        virtual_hosts.append({"name": host, "domains": [host], "routes": routes})
    return {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": name,
            "virtual_hosts": virtual_hosts, "validate_clusters": False}


def config_dump(*, static_clusters=(), clusters=(), listeners=(), static_listeners=(), routes=(),
                rejected_listeners=(), with_listeners_section: bool = True) -> dict:
    configs: list[dict] = [{"@type": ADMIN_V3 + "BootstrapConfigDump", "bootstrap": {"node": {"id": "sidecar~x"}}}]
    configs.append({
        "@type": ADMIN_V3 + "ClustersConfigDump",
        "version_info": "1",
        "static_clusters": [{"cluster": c, "last_updated": "2026-01-01T00:00:00Z"} for c in static_clusters],
        "dynamic_active_clusters": [{"version_info": "1", "cluster": c, "last_updated": "2026-01-01T00:00:00Z"}
                                    for c in clusters],
    })
    if with_listeners_section:
        dynamic = [{"name": l["name"], "active_state": {"version_info": "1", "listener": l}} for l in listeners]
        dynamic += [{"name": name, "error_state": {"failed_configuration": {"name": name}, "details": details}}
                    for name, details in rejected_listeners]
        configs.append({
            "@type": ADMIN_V3 + "ListenersConfigDump",
            "static_listeners": [{"listener": l} for l in static_listeners],
            "dynamic_listeners": dynamic,
        })
    configs.append({"@type": ADMIN_V3 + "RoutesConfigDump",
                    "dynamic_route_configs": [{"version_info": "1", "route_config": r} for r in routes]})
    return {"configs": configs}


def camel_case(value: typing.Any) -> typing.Any:
    """The same document with istioctl's camelCase keys (type URLs and Struct keys kept)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if "_" in key and not key.startswith("@"):
                head, *rest = key.split("_")
                key = head + "".join(p[:1].upper() + p[1:] for p in rest)
            out[key] = camel_case(item)
        return out
    if isinstance(value, list):
        return [camel_case(v) for v in value]
    return value


def big_config_dump(cluster_count: int = 1000) -> dict:
    """Roughly the size of a real mesh sidecar's dump: ~5 KB per cluster, routes and listeners to match."""
    clusters = [eds_cluster(f"outbound|{8000 + i % 1000}||svc-{i}.ns-{i % 37}.svc.cluster.local") for i in range(cluster_count)]
    for cluster in clusters:  # pad to realistic size: Istio adds long metadata and circuit breakers
        cluster["metadata"]["filter_metadata"]["istio"]["labels"] = {f"label-{k}": "x" * 40 for k in range(55)}
    hosts = {c["name"].split("|")[-1]: [c["name"]] for c in clusters}
    routes = [route_config("8080", hosts)]
    listeners = [tcp_listener(f"0.0.0.0_{9000 + i}", clusters[i]["name"]) for i in range(min(200, cluster_count))]
    return config_dump(clusters=clusters, listeners=listeners, routes=routes)


def to_bytes(document: typing.Any) -> bytes:
    return json.dumps(document).encode()
