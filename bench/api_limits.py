"""How fast oversized requests are refused: a createTask body with 2,000,000 unknown trainingArgs keys (~30 MB).

Runs a real `tuneforge serve` process on a fresh home (SQLite) and measures, from the client, the seconds until the
answer arrives:
  - content-length: the 2 M-key body announced by its Content-Length → 413 before one byte of it is read;
  - chunked: the same body sent without Content-Length → 413 once the bytes received pass the JSON limit (8 MiB);
  - key-count: a body under the byte limit with ~600,000 keys → 413 by the cheap key count, without parsing it;
  - json.loads: for scale, what parsing that last body into a dict would cost in this process.
Prints one table and one JSON line. Bar: each refusal < 1 s.

    .venv/bin/python bench/api_limits.py
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from api_bench import free_port, start_server  # a sibling script, not a package

KEYS = 2_000_000


def body_with_keys(count: int) -> bytes:
    args = ",".join(f'"unknown_{i}":0' for i in range(count))
    return f'{{"name":"big","baseModel":"bundled","datasetPath":"x.jsonl","trainingArgs":{{{args}}}}}'.encode()


def refused_by_content_length(port: int, size: int) -> tuple[float, int]:
    """Headers only: the server must answer without waiting for the body."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(f"POST /finetuning/createTask HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {size}\r\n\r\n".encode())
        status = int(conn.recv(64).split(b" ")[1])
    return time.perf_counter() - started, status


def refused_when_streamed(port: int, body: bytes) -> tuple[float, int]:
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start:start + (1 << 20)]

    started = time.perf_counter()
    try:
        status = httpx.post(f"http://127.0.0.1:{port}/finetuning/createTask", content=chunks(),
                            headers={"content-type": "application/json"}, timeout=60).status_code
    except httpx.HTTPError:
        status = 0  # the server answered and closed while the client was still sending
    return time.perf_counter() - started, status


def refused_by_key_count(port: int, body: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    status = httpx.post(f"http://127.0.0.1:{port}/finetuning/createTask", content=body,
                        headers={"content-type": "application/json"}, timeout=60).status_code
    return time.perf_counter() - started, status


def main() -> None:
    big = body_with_keys(KEYS)
    under_limit = body_with_keys(600_000)[: 8 * 1024 * 1024 - 1024]
    under_limit = under_limit[: under_limit.rfind(b",")] + b"}}"
    started = time.perf_counter()
    json.loads(under_limit)
    parse_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        server, _ = start_server(Path(tmp), port := free_port())
        try:
            rows = {"content-length": refused_by_content_length(port, len(big)),
                    "chunked": refused_when_streamed(port, big),
                    "key-count": refused_by_key_count(port, under_limit)}
        finally:
            server.terminate()
            server.wait(10)
    print(f"{'case':<16}{'body MB':>9}{'status':>8}{'seconds':>10}")
    sizes = {"content-length": len(big), "chunked": len(big), "key-count": len(under_limit)}
    for case, (seconds, status) in rows.items():
        print(f"{case:<16}{sizes[case] / 1e6:>9.1f}{status:>8}{seconds:>10.4f}")
    print(f"{'json.loads':<16}{len(under_limit) / 1e6:>9.1f}{'-':>8}{parse_s:>10.4f}")
    print(json.dumps({"bench": "api_limits", "keys": KEYS, "body_bytes": len(big),
                      **{f"{case}_s": round(seconds, 4) for case, (seconds, _) in rows.items()},
                      **{f"{case}_status": status for case, (_, status) in rows.items()},
                      "key_count_body_bytes": len(under_limit), "json_loads_s": round(parse_s, 4)}))


if __name__ == "__main__":
    main()
