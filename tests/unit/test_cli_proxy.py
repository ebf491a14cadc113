"""The CLI reaches a loopback server directly, whatever HTTP_PROXY says; a remote server goes through the proxy."""

from __future__ import annotations

import http.server
import threading

import pytest

from tuneforge.cli.remote import ApiClient, uses_proxy_settings


@pytest.mark.parametrize(("url", "proxied"), [
    ("http://127.0.0.1:8321", False), ("http://localhost:8321", False), ("http://[::1]:8321", False),
    ("http://127.5.0.1", False), ("https://tuneforge.example.com", True), ("http://10.0.0.5:8321", True),
])
def test_which_servers_follow_the_proxy_settings(url, proxied):
    assert uses_proxy_settings(url) is proxied


def test_a_loopback_call_ignores_a_proxy_that_would_fail(monkeypatch):
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: a proxied call would fail
    monkeypatch.delenv("NO_PROXY", raising=False)
    try:
        client = ApiClient(f"http://127.0.0.1:{server.server_port}")
        assert client.get("/health") == {"status": "ok"}
        client.close()
    finally:
        server.shutdown()
