"""The upload that used to kill the server: a 200 MB .jsonl whose single record sits on one line.

Runs a real `tuneforge serve` (SQLite, fresh home), uploads the file through /datasets/createDataset, samples the
server's resident memory (psutil, the server process alone) until the version's validation ends, then restarts the
server on the same home and checks it starts clean and the version is still invalid with the line and the reason.
Prints one table and one JSON line. Bar: peak RSS < 1 GB; invalid with the line; a clean restart.

    .venv/bin/python bench/huge_upload.py [MB]
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from api_bench import free_port, start_server  # a sibling script, not a package


def write_single_record(path: Path, megabytes: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write('{"instruction": "')
        chunk = "word " * (1024 * 1024 // 5)
        for _ in range(megabytes):
            f.write(chunk)
        f.write('", "output": "y"}\n')


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.running = psutil.Process(pid), 0, True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)


def wait_for_version(client: httpx.Client, dataset_id: int) -> dict:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        version = client.get("/datasets/getDataset", params={"id": dataset_id}).json()["versions"][-1]
        if version["status"] not in ("pending", "validating"):
            return version
        time.sleep(0.5)
    raise SystemExit("validation did not end within 600 s")


def main(megabytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home, data = Path(tmp) / "home", Path(tmp) / "one-record.jsonl"
        write_single_record(data, megabytes)
        port = free_port()
        server, _ = start_server(home, port)
        sampler = PeakRss(server.pid)
        sampler.start()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            with data.open("rb") as f:
                created = client.post("/datasets/createDataset", data={"name": "huge"},
                                      files={"files": (data.name, f, "application/jsonl")})
            version = wait_for_version(client, created.json()["id"]) if created.status_code == 201 else {}
            report = client.get("/datasets/validateDataset", params={"id": created.json().get("id", 0)}).json()
        sampler.running = False
        server.terminate()
        server.wait(30)
        restarted, seconds = start_server(home, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            after = client.get("/datasets/getDataset", params={"id": created.json().get("id", 0)}).json()
            healthy = client.get("/health").status_code == 200
        restarted.terminate()
        restarted.wait(30)
    problems = (report.get("report") or {}).get("problems") or []
    first = problems[0] if problems else {}
    row = {"file_mb": megabytes, "upload_status": created.status_code, "version_status": version.get("status"),
           "problem": f"line {first.get('line')}: {first.get('code')}" if first else None,
           "server_peak_rss_mb": round(sampler.peak / 2**20), "restart_healthy": healthy,
           "restart_s": round(seconds, 2), "after_restart": after.get("versions", [{}])[-1].get("status")}
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(row))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
