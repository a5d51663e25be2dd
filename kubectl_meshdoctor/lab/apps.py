"""Stand-in applications for lab pods whose scenario says `serve`: real HTTP servers on 127.0.0.1.

The lab has no pod network, so a meshed pod's app is played by a small threaded HTTP/1.1 server, and the
client sidecars' endpoints for that pod point at it (see ``xds.SidecarWiring.app_ports``). What the
diagnoses need from an app is its *behaviour*, and that is real here: its latency (`delayMs`: a route
timeout shorter than it gives UT; a slow app under concurrent load overflows a small connection pool, UO)
the address it binds (`listen: localhost`: 127.0.0.1 only, which refuses the sidecar's connections), and
`closeReused`: the keep-alive race of an app with a short idle timeout (Node.js' 5 s keepAliveTimeout),
forced: a request arriving on a kept-alive connection finds it closed, as when the app closes it at the
moment Envoy reuses it (deterministic here, a race in production).
"""

from __future__ import annotations

import http.server
import socket
import threading
import time


class _App(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    delay_seconds = 0.0
    close_reused = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client (Envoy after its route timeout) hanging up before the answer is part of the story


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real app server

    served_here = 0  # requests answered on this connection (one handler per connection)

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        if self.served_here and self.server.close_reused:  # type: ignore[attr-defined]
            # The keep-alive race, forced: the app drops an idle connection just as Envoy reuses it.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.served_here += 1
        time.sleep(self.server.delay_seconds)  # type: ignore[attr-defined]
        body = b'{"ok": true}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # the sidecar's access log is the record that matters


class AppServers:
    """One stand-in app per served pod IP; ``stop()`` closes them all."""

    def __init__(self) -> None:
        self._servers: list[_App] = []

    def start(self, port: int, settings: dict, pod_address: str) -> None:
        """Serve on ``pod_address`` (the lab's stand-in for the pod IP), or on 127.0.0.1 only when the
        scenario says `listen: localhost` (the app that refuses what the sidecar sends to the pod IP)."""
        address = "127.0.0.1" if settings.get("listen") == "localhost" else pod_address
        server = _App((address, port), _Handler)
        server.delay_seconds = float(settings.get("delayMs", 0)) / 1000
        server.close_reused = bool(settings.get("closeReused"))
        threading.Thread(target=server.serve_forever, name="lab-app", daemon=True).start()
        self._servers.append(server)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []
