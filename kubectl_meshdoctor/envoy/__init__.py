"""Parsers for what an exec into istio-proxy returns (config_dump, certs, stats, server_info,
resolv.conf, the container log), each reducing it to the plain values of ``evidence``.

They are pure functions of the raw bytes or text and raise only ``errors.ParseError``, so the
collector can turn any broken output into a gap for that pod instead of a crash.
"""
