"""The pod's ``/etc/resolv.conf``: which DNS server the pod was started with.

When someone re-creates the kube-dns Service with a new ClusterIP, running pods keep the old
nameserver; comparing this file with the Service is how that is spotted.
"""

from __future__ import annotations

from kubectl_meshdoctor.envoy._decode import as_text
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.evidence import ResolvConf

_WHAT = "resolv.conf"


def parse_resolv_conf(raw: bytes | str) -> ResolvConf:
    """Read resolv.conf as glibc does: the last ``search``/``domain`` line wins, ``options`` add up.

    A file without nameserver lines is valid (glibc falls back to localhost); an empty answer is not,
    since kubelet always writes the file and empty output means it was not read.
    """
    text = as_text(raw, _WHAT)
    if not text.strip():
        raise ParseError(f"{_WHAT}: empty output")
    if "\x00" in text:
        raise ParseError(f"{_WHAT}: binary data, not a resolv.conf")
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        keyword, values = words[0], words[1:]
        comment = next((i for i, word in enumerate(values) if word.startswith(("#", ";"))), None)
        if comment is not None:
            values = values[:comment]
        if keyword == "nameserver" and values:
            nameservers.append(values[0])
        elif keyword == "search":
            search = values
        elif keyword == "domain" and values:
            search = values[:1]
        elif keyword == "options":
            options.extend(values)
    return ResolvConf(nameservers=tuple(nameservers), search=tuple(search), options=tuple(options))
