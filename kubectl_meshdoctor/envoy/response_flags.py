"""Envoy's response flags (``%RESPONSE_FLAGS%``) as our own data, so messages can explain them offline.

The table covers every flag Envoy 1.40 can print. The meanings are written for someone reading an
istio-proxy access log while debugging a mesh, not copied from Envoy's documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP = "HTTP"
HTTP_AND_TCP = "HTTP+TCP"


@dataclass(frozen=True)
class ResponseFlag:
    short: str  # what the access log prints, e.g. "UF"
    long: str  # Envoy's name for it, e.g. "UpstreamConnectionFailure"
    meaning: str
    scope: str  # HTTP, or HTTP+TCP when tcp_proxy can set it too


def _flag(short: str, long: str, scope: str, meaning: str) -> tuple[str, ResponseFlag]:
    return short, ResponseFlag(short=short, long=long, meaning=meaning, scope=scope)


RESPONSE_FLAGS: dict[str, ResponseFlag] = dict(
    [
        _flag("UH", "NoHealthyUpstream", HTTP_AND_TCP,
              "The upstream cluster had no healthy endpoint to send to (503): no endpoints at all, "
              "or all failing health checks or ejected by outlier detection."),
        _flag("UF", "UpstreamConnectionFailure", HTTP_AND_TCP,
              "Envoy could not connect to the chosen endpoint (503). A refused connection and a failed "
              "TLS handshake both end here; the upstream transport failure reason says which."),
        _flag("UO", "UpstreamOverflow", HTTP_AND_TCP,
              "A circuit breaker limit of the upstream cluster was reached, so the request was not sent (503)."),
        _flag("NR", "NoRouteFound", HTTP_AND_TCP,
              "No route matched the request (404), or for TCP no filter chain matched the connection. "
              "Often a host name or port that the sidecar has no configuration for."),
        _flag("URX", "UpstreamRetryLimitExceeded", HTTP_AND_TCP,
              "Every allowed attempt failed: the HTTP retry budget or the TCP connect attempts ran out."),
        _flag("NC", "NoClusterFound", HTTP_AND_TCP,
              "The route points at a cluster the proxy does not have, e.g. a VirtualService subset "
              "that no DestinationRule defines."),
        _flag("DT", "DurationTimeout", HTTP_AND_TCP,
              "The request or connection lived longer than its configured maximum duration."),
        _flag("DC", "DownstreamConnectionTermination", HTTP,
              "The client closed its connection before the exchange finished."),
        _flag("LH", "FailedLocalHealthCheck", HTTP,
              "The local service failed its health check, so Envoy answered 503 itself."),
        _flag("UT", "UpstreamRequestTimeout", HTTP,
              "The upstream did not answer within the route timeout (504)."),
        _flag("LR", "LocalReset", HTTP,
              "Envoy reset the stream itself, for example while draining or on an internal error."),
        _flag("UR", "UpstreamRemoteReset", HTTP,
              "The upstream reset the connection or stream; a server requiring mTLS that receives "
              "plain text answers this way."),
        _flag("UC", "UpstreamConnectionTermination", HTTP,
              "The upstream closed the connection while the request was in flight."),
        _flag("DI", "DelayInjected", HTTP,
              "A fault-injection delay was applied to the request."),
        _flag("FI", "FaultInjected", HTTP,
              "A fault-injection abort answered the request instead of the upstream."),
        _flag("RL", "RateLimited", HTTP,
              "The rate limit filter refused the request (429)."),
        _flag("UAEX", "UnauthorizedExternalService", HTTP,
              "The external authorization service denied the request."),
        _flag("RLSE", "RateLimitServiceError", HTTP,
              "The rate limit service could not be asked or failed, and the request was refused."),
        _flag("IH", "InvalidEnvoyRequestHeaders", HTTP,
              "A strictly checked x-envoy-* request header had an invalid value (400)."),
        _flag("SI", "StreamIdleTimeout", HTTP,
              "Nothing moved on the stream for longer than the idle timeout (408 or 504)."),
        _flag("DPE", "DownstreamProtocolError", HTTP,
              "The client spoke broken HTTP to Envoy."),
        _flag("UPE", "UpstreamProtocolError", HTTP,
              "The upstream answered with broken HTTP."),
        _flag("UMSDR", "UpstreamMaxStreamDurationReached", HTTP,
              "The upstream stream exceeded its maximum duration."),
        _flag("OM", "OverloadManagerTerminated", HTTP,
              "The overload manager shed the request because the proxy was short of resources."),
        _flag("DF", "DnsResolutionFailed", HTTP,
              "The dynamic forward proxy could not resolve the upstream host name."),
        _flag("RFCF", "ResponseFromCacheFilter", HTTP,
              "The response came from the cache filter, not from the upstream."),
        _flag("NFCF", "NoFilterConfigFound", HTTP,
              "A filter whose configuration comes from the control plane (ECDS) had none, so the "
              "request was refused (500)."),
        _flag("DO", "DropOverload", HTTP,
              "The request was dropped by the cluster's drop_overloads policy or by load shedding (503)."),
    ]
)

BY_LONG_NAME: dict[str, ResponseFlag] = {flag.long: flag for flag in RESPONSE_FLAGS.values()}


def split_flags(text: str) -> tuple[str, ...]:
    """The flags of one ``%RESPONSE_FLAGS%`` value, sorted: Envoy's order is not stable across releases."""
    if not text or text == "-":
        return ()
    return tuple(sorted({part.strip() for part in text.split(",") if part.strip() and part.strip() != "-"}))


def describe(flag: str) -> str:
    """One line for a flag, accepting the short code or Envoy's long name."""
    known = RESPONSE_FLAGS.get(flag) or BY_LONG_NAME.get(flag)
    if known is None:
        return f"{flag}: not a response flag this version of meshdoctor knows"
    return f"{known.short} ({known.long}): {known.meaning}"
