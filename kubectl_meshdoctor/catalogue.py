"""The finding catalogue: every public code, its default severity and its explanation.

Codes are public and never reused; a retired code stays here with ``retired=True``. ``explain CODE``
prints these texts, and ``checks -o json`` lists them. Kept in code order.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_meshdoctor.errors import UsageError
from kubectl_meshdoctor.findings import Severity


@dataclass(frozen=True)
class CatalogueEntry:
    code: str
    name: str
    severity: Severity
    title: str
    symptom: str
    cause: str
    detection: str
    fix: str
    retired: bool = False

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "title": self.title,
            "symptom": self.symptom,
            "cause": self.cause,
            "detection": self.detection,
            "fix": self.fix,
            "retired": self.retired,
        }


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        code="MD0101",
        name="SidecarMissing",
        severity=Severity.WARNING,
        title="Pod should be in the mesh but has no istio-proxy",
        symptom="The pod runs without a sidecar: its traffic bypasses mTLS and routing, and STRICT "
        "servers reset its connections.",
        cause="The pod started before injection was enabled, injection was turned off for it "
        "(sidecar.istio.io/inject=false, hostNetwork), or the injector webhook did not run.",
        detection="The pod's namespace has istio-injection=enabled or an istio.io/rev label, or the pod "
        "is labelled sidecar.istio.io/inject=true, yet no istio-proxy container or native-sidecar init "
        "container exists. kube-system, kube-public and hostNetwork pods are ignored, and so are Istio's "
        "own pods (labelled istio=... or release=istio; in istio-system a pod's istio.io/rev label names "
        "the revision it serves), as istioctl analyze does.",
        fix="Restart the workload (kubectl rollout restart) so the injector adds the sidecar; if that "
        "does not help, check the istio-sidecar-injector webhook and the pod's inject labels.",
    ),
    CatalogueEntry(
        code="MD0102",
        name="SidecarNotReady",
        severity=Severity.ERROR,
        title="istio-proxy is not ready (the 1/2 READY symptom)",
        symptom="The pod shows 1/2 READY; kubelet's probe of :15021/healthz/ready fails, so the pod "
        "receives no traffic from Services.",
        cause="pilot-agent judges Envoy not ready: no configuration received from istiod, "
        "configuration rejected, or Envoy not yet live. This is a symptom; the causes below it say why.",
        detection="The istio-proxy container status is not ready, or `pilot-agent request GET "
        "healthz/ready --debug-port 15021` (15020 when 15021 refuses) does not answer 200.",
        fix="Follow the cause linked to this finding (MD0201/MD0202 and below).",
    ),
    CatalogueEntry(
        code="MD0103",
        name="InjectionFailed",
        severity=Severity.ERROR,
        title="The sidecar injector did not inject the pod, or refused its creation",
        symptom="Pods run without istio-proxy although injection is on (MD0101), or a workload has fewer "
        "pods than it wants: its ReplicaSet reports FailedCreate.",
        cause="The injector webhook failed (istiod unreachable or without endpoints: with failurePolicy "
        "Fail the pod is refused), no MutatingWebhookConfiguration selects the pod (istio.io/rev names a "
        "revision or tag no webhook serves; a namespace or object selector excludes it), or the pod was "
        "created before its namespace was labelled.",
        detection="Events with reason FailedCreate whose message says `failed calling webhook "
        "\"...sidecar-injector.istio.io\"`, on the ReplicaSet or other owner; the Istio "
        "MutatingWebhookConfigurations' namespace and object selectors evaluated against the pod's and its "
        "namespace's labels; a webhook that selects the pod today means it was created before that.",
        fix="Webhook failing: make istiod (the Service the webhook calls) ready, then the controller "
        "retries. No webhook selects: label the namespace with a revision or tag that exists (kubectl get "
        "mutatingwebhookconfigurations), or install that revision. Created before the label: kubectl "
        "rollout restart the workload.",
    ),
    CatalogueEntry(
        code="MD0104",
        name="ProxyUidConflict",
        severity=Severity.WARNING,
        title="An application container runs as UID 1337, the sidecar's UID",
        symptom="The pod's outbound calls bypass the sidecar: no mTLS (STRICT servers reset them), no "
        "routing rules, retries or telemetry.",
        cause="istio-init's iptables rules exempt UID 1337 (Envoy's own traffic) from redirection; an "
        "application running as 1337 is exempted too.",
        detection="An application container's securityContext.runAsUser, or else the pod's, is 1337, in a "
        "workload that is or will be injected (istio-proxy and Istio's own workloads excepted). Runs on "
        "live pods and on manifests (like istioctl IST0144), with the workload as subject.",
        fix="Run the application under another UID (securityContext.runAsUser), then roll the workload.",
    ),
    CatalogueEntry(
        code="MD0201",
        name="XdsConfigNotReceived",
        severity=Severity.ERROR,
        title="Envoy received no configuration from istiod",
        symptom="pilot-agent logs `Envoy proxy is NOT ready: config not received from XDS server (is "
        "Istiod running?)`; Envoy stays PRE_INITIALIZING.",
        cause="The proxy cannot reach istiod.istio-system.svc:15012: istiod down or without endpoints, "
        "cluster DNS broken in the pod, a NetworkPolicy or firewall in between.",
        detection="The stats pilot-agent reads show cluster_manager.cds.update_success and "
        "listener_manager.lds.update_success at 0 (missing counts as 0), and /server_info shows "
        "PRE_INITIALIZING or INITIALIZING.",
        fix="Restore the path to istiod: see the linked cause (MD0203 istiod, MD0301 DNS).",
    ),
    CatalogueEntry(
        code="MD0202",
        name="XdsConfigRejected",
        severity=Severity.ERROR,
        title="Envoy rejected configuration pushed by istiod",
        symptom="pilot-agent reports `config received from XDS server, but was rejected`; the proxy "
        "keeps stale or no configuration.",
        cause="istiod generated configuration Envoy refuses (an invalid EnvoyFilter, a version skew "
        "between istiod and the proxy, a bad certificate or regex in a user resource).",
        detection="cluster_manager.cds.update_rejected or listener_manager.lds.update_rejected above 0, "
        "or config_dump entries carrying error_state with Envoy's rejection details.",
        fix="Read the rejection details in the evidence, fix or remove the offending resource "
        "(EnvoyFilter first), and keep proxy and istiod versions within the supported skew.",
    ),
    CatalogueEntry(
        code="MD0203",
        name="IstiodUnavailable",
        severity=Severity.ERROR,
        title="istiod is unavailable",
        symptom="New or restarted sidecars never become ready; configuration changes stop reaching "
        "proxies.",
        cause="The istiod Service is missing, or has no ready endpoints (istiod pods crashed, scaled to "
        "zero, or failing their own readiness).",
        detection="No Service `istiod` (or `istiod-<rev>`, or legacy `istio-pilot`) in the control-plane "
        "namespace, or its Endpoints/EndpointSlices list no ready address.",
        fix="kubectl -n istio-system get deploy,pods -l app=istiod; fix the istiod Deployment (logs, "
        "events, resources) until its endpoints are ready.",
    ),
    CatalogueEntry(
        code="MD0204",
        name="ProxyDisconnected",
        severity=Severity.ERROR,
        title="Envoy was configured by istiod but no longer receives updates",
        symptom="The pod stays 2/2 READY and serves with the configuration it got, but new endpoints, routes "
        "and policies no longer reach it; it is missing from istioctl proxy-status (or STALE there).",
        cause="The proxy's stream to istiod broke after it was configured: istiod went away or has no "
        "ready endpoint, the pod can no longer resolve or reach istiod (DNS, NetworkPolicy, firewall), or "
        "istiod is too loaded to get acknowledgements (STALE).",
        detection="From the stats Istio's bootstrap keeps: cds and lds update_success above 0 with "
        "update_failure above 0, and no open cluster.xds-grpc connection (or pilot-agent's xdsproxy log "
        "shows the upstream stream broke after it last connected, or no istiod pod lists the proxy in "
        "/debug/syncz). A proxy istiod lists with a type sent but not acknowledged is STALE (warning). "
        "Envoy's CDS/LDS/RDS versions and update times, and istiod's sent/acked per type, are in each "
        "pod's proxyStatus (-o json).",
        fix="Restore the path to istiod (see the linked cause: MD0203 istiod, MD0301 DNS); the sidecar "
        "reconnects by itself. If it stays STALE, scale istiod and restart the pod.",
    ),
    CatalogueEntry(
        code="MD0205",
        name="ProxyVersionSkew",
        severity=Severity.WARNING,
        title="The sidecar's Istio release is outside the skew its istiod supports",
        symptom="After a control-plane upgrade (or a proxy image pinned by hand), some proxies run another "
        "Istio release than their istiod: configuration may be rejected (MD0202) or behave differently.",
        cause="The workload was not restarted after istiod was upgraded, or its proxy image is newer than "
        "the istiod revision that serves it. Istio supports a data plane up to one minor release older "
        "than its control plane, never newer.",
        detection="The proxy's release (node metadata ISTIO_VERSION from /server_info, else the istio-proxy "
        "image tag) against the release of its revision's istiod pods (discovery image tag, else the "
        "app.kubernetes.io/version label). Newer minor, or two or more minors older: warning; same minor, "
        "another patch: info. Multi-cluster runs also compare the clusters of one mesh: their newest istiod "
        "releases more than one minor apart is a warning naming both clusters.",
        fix="kubectl rollout restart the workload so the injector of its revision gives it the matching "
        "proxy; to move to a newer release, upgrade that istiod revision first (or relabel the namespace "
        "istio.io/rev=<revision of that release>).",
    ),
    CatalogueEntry(
        code="MD0206",
        name="ControlPlaneNotRedundant",
        severity=Severity.WARNING,
        title="The istiod revision serving these pods is not redundant",
        symptom="Nothing yet: an upgrade, a node drain or one crash leaves every sidecar of the revision "
        "without a control plane (no new pods become ready, no config or certificate updates).",
        cause="istiod runs one replica, or no PodDisruptionBudget protects it, or its autoscaler may "
        "scale it down to one (HPA minReplicas 1, the default install).",
        detection="For each istiod revision the meshed pods use: its Deployment in istio-system "
        "(istiod or istiod-<rev>) with spec.replicas 1 and no HPA, an HPA targeting it with minReplicas "
        "1 (or unset), or no PodDisruptionBudget selecting its pods.",
        fix="Run at least two istiod replicas (values.pilot.autoscaleMin: 2 / replicaCount: 2) and keep "
        "the PodDisruptionBudget the chart installs (global.defaultPodDisruptionBudget.enabled).",
    ),
    CatalogueEntry(
        code="MD0301",
        name="ClusterDnsChanged",
        severity=Severity.ERROR,
        title="The pod's DNS server is not the cluster DNS Service",
        symptom="Every name lookup in the pod fails, istiod's included, so the sidecar never gets its "
        "configuration and all pods show 1/2 READY.",
        cause="The kube-dns Service was re-created and got a new ClusterIP; pods keep the old "
        "nameserver that kubelet wrote into /etc/resolv.conf at pod start.",
        detection="The pod's /etc/resolv.conf nameserver differs from the ClusterIP of the Service "
        "labelled k8s-app=kube-dns in kube-system (pods with dnsPolicy None or Default are skipped).",
        fix="Re-create the DNS Service with its old clusterIP (spec.clusterIP: <old IP>), or point "
        "kubelet's clusterDNS at the new IP and restart the pods.",
    ),
    CatalogueEntry(
        code="MD0401",
        name="MtlsToPlaintextEndpoint",
        severity=Severity.ERROR,
        title="Client always originates mTLS toward endpoints without a sidecar",
        symptom="Connections fail: the client's access log shows `UF,URX` with a TLS transport failure "
        "(WRONG_VERSION_NUMBER, Connection reset by peer).",
        cause="The client's Envoy cluster has one cluster-wide Istio mTLS transport socket (typical of "
        "headless Services, ORIGINAL_DST clusters, or a DestinationRule forcing ISTIO_MUTUAL) while the "
        "pods behind it have no sidecar to terminate mTLS.",
        detection="A cluster in the client's config_dump whose transport_socket is Istio mTLS with no "
        "tlsMode match, whose Service's endpoints are pods without istio-proxy or without the "
        "security.istio.io/tlsMode=istio label; confirmed by access-log lines for that cluster.",
        fix="Add a DestinationRule for the host with trafficPolicy.tls.mode: DISABLE, or inject the "
        "server pods.",
    ),
    CatalogueEntry(
        code="MD0402",
        name="MtlsModeConflict",
        severity=Severity.ERROR,
        title="DestinationRule sends plain text to a STRICT mTLS workload",
        symptom="Requests to the service fail with 503 (`UC`, `UR`, `URX`): the server resets plain-text "
        "connections.",
        cause="A DestinationRule sets tls.mode DISABLE (or SIMPLE) for a host whose workloads' effective "
        "PeerAuthentication is STRICT.",
        detection="DestinationRule tls.mode DISABLE/SIMPLE toward a Service whose pods resolve to STRICT "
        "(workload selector policy, else namespace policy, else the mesh-wide policy in istio-system); "
        "live, the client's cluster for that host carries no TLS.",
        fix="Set the DestinationRule's tls.mode to ISTIO_MUTUAL (or remove the tls block), or relax the "
        "PeerAuthentication to PERMISSIVE for that workload.",
    ),
    CatalogueEntry(
        code="MD0403",
        name="CertificateExpiring",
        severity=Severity.WARNING,
        title="Workload or CA certificate expired, not yet valid, or about to expire",
        symptom="mTLS handshakes fail (CERTIFICATE_VERIFY_FAILED, certificate has expired) or soon will.",
        cause="Workload certificate rotation is stuck (istiod CA unreachable, clock skew), or the root/"
        "intermediate CA is near the end of its life.",
        detection="From the certificates the sidecar holds (its SDS secrets, else /certs): a workload "
        "certificate expired, not yet valid, or with less than a quarter of its lifetime left (Istio "
        "renews at half life), or whose SPIFFE SAN names another service account; a CA "
        "certificate expiring within --ca-warn-days (default 30).",
        fix="Restart the pod to force a new certificate, check istiod's CA and the node clock; rotate "
        "the root CA before it expires (plug-in CA procedure).",
    ),
    CatalogueEntry(
        code="MD0404",
        name="RootCaMismatch",
        severity=Severity.ERROR,
        title="Pods trust different root CAs: mutual TLS between them fails",
        symptom="Calls between some meshed pods fail with CERTIFICATE_VERIFY_FAILED (UF,URX in the "
        "client's access log) although every pod is READY and every certificate is valid.",
        cause="A root rotation without a transition period: istiod signs with a new root and publishes "
        "only it in istio-ca-root-cert, restarted pods trust the new root, the others still the old one "
        "(or a second istiod / plug-in CA issues from another root).",
        detection="The roots each pod's sidecar trusts (its SDS secret ROOTCA, else /certs), grouped by "
        "root (serial and expiry) across the sweep, against the root-cert.pem of the istio-ca-root-cert "
        "ConfigMap of the pod's namespace; a pod sharing no root with the ConfigMap (or, without it, with the larger group of pods) is "
        "reported, and so is a pod whose access log shows CERTIFICATE_VERIFY_FAILED while such pods exist.",
        fix="Give both sides a common root: put the old and the new root in the cacerts root-cert.pem "
        "(combined bundle) so istiod distributes both, kubectl rollout restart the workloads still on the "
        "old root, and drop the old root only once every pod trusts the new one (Istio's root transition).",
    ),
    CatalogueEntry(
        code="MD0406",
        name="CrossClusterTrustMismatch",
        severity=Severity.ERROR,
        title="The clusters of one mesh trust different root CAs",
        symptom="Calls between clusters fail the TLS handshake (503 with UF and a transport failure reason "
        "naming CERTIFICATE_VERIFY_FAILED) while calls inside each cluster work.",
        cause="Each cluster's istiod signs with a different root: no common root was plugged in (the cacerts "
        "Secret with the shared root-cert.pem), or one cluster kept istiod's self-signed root. A sidecar "
        "validates the peer's chain only against its own ROOTCA.",
        detection="Multi-cluster runs only: the ROOTCA of every examined sidecar, named as Envoy's /certs "
        "names it (serial number and validity; /certs prints no fingerprint), gathered per cluster. Two clusters trust "
        "differently when no root of one appears in the other; a cluster without examined sidecars is known by "
        "the root its istiod publishes in istio-system's istio-ca-root-cert ConfigMap. Whether the cacerts "
        "Secret exists is read metadata-only (never its data). A pod of those "
        "clusters whose access log shows CERTIFICATE_VERIFY_FAILED has its failing calls (MD0601) linked here, "
        "unless the failing endpoint's address is the pod IP of a pod of its own cluster or of a cluster "
        "sharing its root.",
        fix="Plug the same root into every cluster (istio-system/cacerts with a common root-cert.pem and a "
        "per-cluster intermediate), restart istiod, then restart the workloads so their certificates and "
        "ROOTCA are reissued.",
    ),
    CatalogueEntry(
        code="MD0501",
        name="SubsetNotDefined",
        severity=Severity.ERROR,
        title="VirtualService routes to a subset no DestinationRule defines",
        symptom="Requests get 503 `NC` (cluster not found) or 404 `NR`; the app shows its error page.",
        cause="A route names `subset: X` for a host, but no DestinationRule for that host defines subset "
        "X, so Envoy has no cluster outbound|port|X|host.",
        detection="From manifests: VirtualService route destinations with a subset absent from every "
        "DestinationRule of that host. Live: routes in config_dump pointing at clusters Envoy does not "
        "have.",
        fix="Add the subset (with its labels) to the DestinationRule of that host, or remove the subset "
        "from the route.",
    ),
    CatalogueEntry(
        code="MD0502",
        name="PortProtocolUnknown",
        severity=Severity.WARNING,
        title="Service port name or appProtocol does not name a protocol Istio knows",
        symptom="HTTP traffic is treated as opaque TCP: no L7 routing, retries, or HTTP metrics.",
        cause="Istio selects the protocol from appProtocol, else the port name `<protocol>[-<suffix>]`; "
        "a name like `http2foo` or `web` is not recognised.",
        detection="A Service port whose appProtocol, or else whose name prefix, is none of http, http2, "
        "https, grpc, grpc-web, mongo, mysql, redis, tcp, tls, udp. A port with neither name nor "
        "appProtocol is reported at info (protocol detection applies, as istioctl's IST0118 says), except "
        "on an ExternalName Service (a warning, as IST0150). Istio's own Services are skipped.",
        fix="Rename the port `<protocol>-<suffix>` (for example http-web) or set appProtocol.",
    ),
    CatalogueEntry(
        code="MD0503",
        name="NoHealthyUpstream",
        severity=Severity.ERROR,
        title="The upstream cluster has no healthy endpoint (UH, 503 no_healthy_upstream)",
        symptom="Requests get 503 with response flag UH and details no_healthy_upstream in the client's "
        "access log.",
        cause="Envoy has no endpoint it may use for the cluster: the Service selects no pod (a label typo), "
        "its pods are not ready, its named targetPort is not declared by the pods, a DestinationRule subset "
        "selects no pod, or outlier detection ejected every host.",
        detection="The client proxy's access-log lines with UH per upstream cluster, its /clusters answer "
        "for that cluster (endpoints and their health flags), and the Service, its selector, the pods' "
        "labels and readiness, and the DestinationRule (subsets, outlierDetection). Linked as the cause of "
        "the MD0601 finding for the same cluster.",
        fix="Depends on the cause shown: make the selector match the pods' labels, fix pod readiness, "
        "name the container port as targetPort says, fix the subset labels, or fix the failing server "
        "that outlier detection ejected.",
    ),
    CatalogueEntry(
        code="MD0504",
        name="RouteNotFound",
        severity=Severity.ERROR,
        title="No route for the Host and path the client used (NR, 404 route_not_found)",
        symptom="Requests get 404 with response flag NR (details route_not_found) from the client's own "
        "sidecar; the server never sees them.",
        cause="In a sidecar (ALLOW_ANY sends unknown Hosts to PassthroughCluster, so they are not NR): a "
        "VirtualService whose http matches leave the request out and that has no default route. Where no "
        "catch-all exists (gateways, Sidecar-scoped route configs): no virtual host covers the Host.",
        detection="The client proxy's NR lines (Host, path, the port's route config) and its route configs "
        "(config_dump dynamic_route_configs, read only when NR lines exist): the virtual host the Host picks "
        "and its route matches; then the VirtualService whose hosts cover the Host. Linked as the cause of "
        "the MD0601 finding for lines without upstream cluster.",
        fix="Give the VirtualService a default route (a last http entry without match) or matches for the "
        "paths clients call; where no virtual host covers the Host, make a VirtualService's hosts, gateways "
        "and port cover the name clients use.",
    ),
    CatalogueEntry(
        code="MD0505",
        name="EgressBlocked",
        severity=Severity.ERROR,
        title="REGISTRY_ONLY blocks a destination no ServiceEntry declares",
        symptom="Calls to an external host fail from meshed pods only: HTTP gets 502 at once, TLS and TCP "
        "connections are closed before any byte comes back.",
        cause="outboundTrafficPolicy is REGISTRY_ONLY (in the Sidecar that applies to the pod, else in the "
        "mesh config) and no ServiceEntry visible to the pod declares the host. Real Envoy shows two forms: "
        "HTTP on a port with a route config is answered 502 by the block_all route itself (a direct "
        "response: no response flag, no upstream cluster); everything else goes to BlackHoleCluster, which "
        "has no endpoint (UH toward BlackHoleCluster, the original destination as the downstream local "
        "address).",
        detection="The client proxy's access log (block_all 502 lines; UH lines toward BlackHoleCluster), the "
        "Sidecar's and the mesh config's (ConfigMap istio-system/istio) outboundTrafficPolicy, and the "
        "ServiceEntries read. Linked as the cause of the MD0601 finding for BlackHoleCluster.",
        fix="Apply the ServiceEntry the finding prints for the destination (hosts, port, protocol, "
        "resolution, location MESH_EXTERNAL), or set outboundTrafficPolicy to ALLOW_ANY if the mesh does "
        "not need to restrict egress.",
    ),
    CatalogueEntry(
        code="MD0506",
        name="CircuitBreakerTripped",
        severity=Severity.ERROR,
        title="A connection pool limit rejects requests (UO, 503 overflow)",
        symptom="Under load, a share of the requests to one service get 503 at once with response flag UO "
        "(details upstream_reset_before_response_started{overflow}); the server never sees them.",
        cause="The cluster's circuit breaker is full: a DestinationRule connectionPool (tcp.maxConnections, "
        "http.http1MaxPendingRequests, http.http2MaxRequests) is lower than the concurrency the client "
        "really sends, often together with a slow server that keeps connections busy.",
        detection="The client proxy's UO lines per upstream cluster, the thresholds Envoy enforces for that "
        "cluster (/clusters circuit_breakers), and the DestinationRule's connectionPool for the host and "
        "subset. Istio's default stats inclusion list keeps no per-cluster overflow counters, so they are not "
        "used. Linked as the cause of the MD0601 finding for the same cluster.",
        fix="Raise the connectionPool limits to the concurrency the clients need (or remove them), make the "
        "server faster or add replicas, and let clients retry with backoff.",
    ),
    CatalogueEntry(
        code="MD0507",
        name="UpstreamConnectionReuseReset",
        severity=Severity.ERROR,
        title="The server closes kept-alive connections Envoy still reuses (UC, 503 connection_termination)",
        symptom="A small share of requests gets 503 with response flag UC and details "
        "upstream_reset_before_response_started{connection_termination}, more after quiet periods.",
        cause="The keep-alive race: the app closes idle connections after its keep-alive timeout (Node.js: "
        "5 s), Envoy keeps them pooled longer (1 h by default; Istio sets no idle timeout unless a "
        "DestinationRule's connectionPool.http.idleTimeout does) and sends a request on a connection the app "
        "is closing. Istio's default outbound retries do not cover resets.",
        detection="The client proxy's UC lines with connection_termination per outbound cluster, and the "
        "DestinationRule's connectionPool idleTimeout (or its absence). Linked as the cause of the MD0601 "
        "finding for the same cluster.",
        fix="Set connectionPool.http.idleTimeout below the app's keep-alive timeout, or raise the app's "
        "keep-alive timeout above Envoy's; a VirtualService retry on reset absorbs what remains.",
    ),
    CatalogueEntry(
        code="MD0508",
        name="Http10Client",
        severity=Severity.ERROR,
        title="A client speaks HTTP/1.0 and gets 426 Upgrade Required",
        symptom="Requests from one client (typically nginx with proxy_pass) get 426 Upgrade Required; the "
        "receiving proxy logs `\"- - HTTP/1.1\" 426 DPE low_version`.",
        cause="The client sends HTTP/1.0 (nginx's default for proxy_pass without proxy_http_version 1.1) "
        "and Istio's HTTP connection managers do not accept HTTP/1.0 unless PILOT_HTTP10 (or the proxy "
        "metadata HTTP10) is set: gateways and a sidecar's inbound HTTP chain answer 426. A meshed client's "
        "own sidecar does not answer 426: its outbound HTTP chain matches only http/1.1 and h2c, so HTTP/1.0 "
        "passes as raw TCP without routing (not diagnosed: its log line carries no failure flag).",
        detection="426 lines with flag DPE and details low_version in a proxy's access log; the client is "
        "named by its address (a pod of the objects read, when one has it). Linked as the cause of that "
        "proxy's MD0601 finding for lines without upstream cluster.",
        fix="In nginx: `proxy_http_version 1.1;` and `proxy_set_header Connection \"\";`. Or accept HTTP/1.0 "
        "in Istio: PILOT_HTTP10=1 on istiod, or ISTIO_META_HTTP10=1 on the receiving pods' proxies.",
    ),
    CatalogueEntry(
        code="MD0509",
        name="AppNotListening",
        severity=Severity.ERROR,
        title="The server's sidecar cannot connect to its app (inbound connection refused)",
        symptom="Clients get 503s or resets; the server pod's own sidecar logs UF toward inbound|PORT|| "
        "with delayed_connect_error:_Connection_refused.",
        cause="Nothing accepts connections on the pod IP at that port: the app listens on 127.0.0.1 only "
        "(since Istio 1.10 the sidecar delivers inbound traffic to the pod IP, not to localhost), or on "
        "another port than the Service's targetPort, or is not running.",
        detection="The server proxy's UF lines toward an inbound cluster with a connection-refused transport "
        "failure reason, the pod's container ports and restarts, and the Services sending to that port. "
        "Linked as the cause of the MD0601 finding for that inbound cluster in the same pod.",
        fix="Make the app listen on 0.0.0.0 (all addresses) on the Service's targetPort, or correct the "
        "targetPort to the port the app really uses.",
    ),
    CatalogueEntry(
        code="MD0510",
        name="UpstreamTimeout",
        severity=Severity.ERROR,
        title="The route's timeout is shorter than the server's latency (UT, 504)",
        symptom="Requests get 504 with response flag UT (details response_timeout), all after about the "
        "same time.",
        cause="Envoy gave up waiting for the response: the route's timeout (a VirtualService http timeout; "
        "Istio sets none by default) is shorter than the time the server really takes.",
        detection="The client proxy's UT lines per upstream cluster and their durations, the timeout of the "
        "Envoy route they matched (config_dump routes, read only when UT lines exist), and the "
        "VirtualService that sets it. Linked as the cause of the MD0601 finding for the same cluster.",
        fix="Set the VirtualService timeout above the server's real latency (its p99, with margin), or make "
        "the server answer faster; keep the caller's own deadline consistent with it.",
    ),
    CatalogueEntry(
        code="MD0511",
        name="PortProtocolConflict",
        severity=Severity.WARNING,
        title="Services selecting one workload declare different protocols for the same port",
        symptom="Traffic to one of the Services is handled with the wrong protocol: HTTP routing, retries "
        "and metrics are lost, or TCP connections are parsed as HTTP and fail.",
        cause="istiod builds one inbound listener per pod port; when Services that select the pod "
        "disagree on its protocol, it keeps the oldest Service's and reports a conflict. As info: "
        "Deployments without app and version labels, which Istio's telemetry uses to name them.",
        detection="Two or more Services in the workload's namespace that select its pods, map the same "
        "container port (targetPort) and declare different protocols (appProtocol, else the port name). "
        "Runs on live pods and on manifests (like istioctl IST0116), with the workload as subject.",
        fix="Give the port one protocol in every Service that selects the workload (same port name "
        "prefix or appProtocol), or serve the second protocol on another container port.",
    ),
    CatalogueEntry(
        code="MD0601",
        name="UpstreamFailuresLogged",
        severity=Severity.WARNING,
        title="The proxy's access log shows failing requests",
        symptom="Requests through the sidecar fail; the access log carries Envoy response flags.",
        cause="Each response flag names a failure (UF upstream connection failure, NR no route, NC no "
        "cluster, URX retry limit, ...); the message explains each flag seen.",
        detection="Access-log lines (Istio text or JSON format) from the istio-proxy container with "
        "failure flags, grouped by flag and upstream cluster. When access logging is off, says so.",
        fix="Follow the meaning of each flag; where a deeper finding names the cause, fix that.",
    ),
    CatalogueEntry(
        code="MD0701",
        name="RemoteClusterNotSynced",
        severity=Severity.ERROR,
        title="istiod does not read another cluster of the mesh",
        symptom="A Service that runs in several clusters is served only by the local endpoints (EDS holds no "
        "remote endpoint), so cross-cluster failover and load balancing never happen.",
        cause="In a multi-primary mesh each istiod reads the other clusters through remote secrets (label "
        "istio/multiCluster: \"true\", made by istioctl create-remote-secret). The secret is missing, names the "
        "wrong cluster, or holds credentials or an address istiod cannot use, so the cluster is absent from "
        "istiod's list or never reaches sync status synced.",
        detection="Multi-cluster runs only: `pilot-discovery request GET debug/clusterz` in one ready istiod pod "
        "of each cluster (the clusters istiod reads, their secret and sync status), compared with the cluster "
        "IDs of the other clusters of the run that share its mesh ID. Secrets are never read. The symptom is "
        "shown where it was read: one examined sidecar per cluster is asked for the EDS of the Services that run, "
        "ready, in several clusters (`config_dump?resource=dynamic_endpoint_configs&include_eds&name_regex=` the "
        "outbound clusters of their namespaces), and each Service whose endpoints there are all local (Istio's "
        "endpoint metadata names the cluster) while the unread cluster has ready pods is named in the evidence. "
        "Remote endpoints missing while /debug/clusterz says synced are not reported: that rules this cause out.",
        fix="Create (or recreate) the remote secret of the missing cluster in this cluster's istio-system: "
        "istioctl create-remote-secret --context=<other> --name=<its cluster name> | kubectl apply -f - "
        "--context=<this>; check that istiod can reach the other API server, then see /debug/clusterz say synced.",
    ),
    CatalogueEntry(
        code="MD0702",
        name="EastWestGatewayUnavailable",
        severity=Severity.ERROR,
        title="A cluster on its own network has no working east-west gateway",
        symptom="Callers in one cluster reach only their local endpoints of a Service that also runs in a "
        "cluster on another network, or get 503 for it, while everything inside each cluster works.",
        cause="Clusters on different networks (topology.istio.io/network) reach each other's pods only through "
        "the target cluster's east-west gateway: a Service labelled istio=eastwestgateway in istio-system with "
        "an address the other networks can reach, ready gateway pods, and a Gateway exposing *.local on port "
        "15443 with TLS mode AUTO_PASSTHROUGH. One of these is missing.",
        detection="Multi-cluster runs only, when the clusters read are on at least two networks (the sidecars' "
        "ISTIO_META_NETWORK, else istio-system's topology.istio.io/network label; a meshed pod's own "
        "topology.istio.io/network label, which the injector writes, puts it on another network, while a "
        "workload namespace's label is read neither by the injector nor by istiod): in each cluster, "
        "for each network its workloads are on, the istio=eastwestgateway Services of istio-system for that "
        "network (labelled with it; the cluster's own network also takes an unlabelled one) with "
        "status.loadBalancer.ingress or externalIPs, their Endpoints, and istio-system's Gateways whose "
        "selector matches the gateway.",
        fix="Install the east-west gateway in that cluster (Istio's multi-cluster guide: "
        "gen-eastwest-gateway.sh with the cluster's network), make sure its Service gets an external address "
        "and its pods are ready, and expose the services with the cross-network Gateway (port 15443, "
        "AUTO_PASSTHROUGH, hosts *.local).",
    ),
    CatalogueEntry(
        code="MD0703",
        name="MeshIdentityMismatch",
        severity=Severity.ERROR,
        title="The clusters of one mesh disagree on mesh ID or trust domain, or share a cluster name",
        symptom="Across clusters, services see only their own cluster's endpoints, or cross-cluster calls "
        "fail authorization or mTLS identity checks, while each cluster alone looks healthy.",
        cause="A multi-cluster mesh needs one mesh ID (values.global.meshID) and one trust domain "
        "(meshConfig.trustDomain) in every cluster, and a cluster name (values.global.multiCluster.clusterName: "
        "istiod's CLUSTER_ID) unique to each. istiod keys remote clusters by that name and skips a remote "
        "secret whose cluster carries its own name (\"ignoring cluster as it would overwrite the config "
        "cluster\"); left unset, every cluster is called \"Kubernetes\". A second trust domain without "
        "trustDomainAliases makes the other cluster's SPIFFE identities foreign.",
        detection="Multi-cluster runs only (--context a,b or --all-contexts): each cluster's identity as its "
        "evidence shows it, the sidecars' injected env (ISTIO_META_CLUSTER_ID, ISTIO_META_MESH_ID, "
        "TRUST_DOMAIN), else istiod's CLUSTER_ID env and the mesh config (trustDomain, defaultConfig.meshId), "
        "compared across the clusters read. Two contexts of the same API server are one cluster.",
        fix="Reinstall or upgrade with the same meshID and trustDomain everywhere and a distinct "
        "clusterName per cluster (then recreate the remote secrets with that name), and restart the workloads "
        "so their sidecars pick up the new identity.",
    ),
)

_BY_CODE = {entry.code: entry for entry in CATALOGUE}


def entry(code: str) -> CatalogueEntry:
    """The catalogue entry for ``code``; a user typo is a usage error, not a KeyError."""
    try:
        return _BY_CODE[code.upper()]
    except KeyError:
        raise UsageError(f"unknown finding code {code!r}; `kubectl meshdoctor checks` lists them") from None
