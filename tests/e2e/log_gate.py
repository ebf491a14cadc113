"""Holding a training worker at a logged step, so a browser test sees the run mid-way whatever the machine's speed.

The worker reports step N (its progress event, in events.jsonl) and then opens RUN_DIR/trainer_log.jsonl to append
that step's line; it opens the file anew for every logged step. If that path is a FIFO, the open blocks until
someone opens the other end to read. So a FIFO made before the worker starts holds the run at its first logged step,
already reported, for as long as the test likes, and `release()` lets the rest of the run go at full speed: the test
watches a held run instead of racing a tiny one that may end between two refreshes of the page. Nothing in the
engine knows about it: the FIFO is only a file the worker writes to (and the loss plot at the end skips what is not a
regular file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path

TRAINER_LOG = "trainer_log.jsonl"  # RunDir.trainer_log_file's name


class LogGate:
    """A FIFO at RUN_DIR/trainer_log.jsonl: closed until `release()`, then drained until `close()`."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        self.path = run_dir / TRAINER_LOG
        os.mkfifo(self.path)
        self.lines: list[str] = []
        self._closing = threading.Event()
        self._drain: threading.Thread | None = None

    def release(self) -> None:
        """Lets every further logged step through: a thread reads each line the worker writes."""
        if self._drain is None:
            self._drain = threading.Thread(target=self._read_until_closed, name="log-gate", daemon=True)
            self._drain.start()

    def close(self, timeout: float = 5.0) -> None:
        """Ends the draining thread, which may be waiting in open() for a worker that is gone."""
        self._closing.set()
        deadline = time.monotonic() + timeout
        while self._drain is not None and self._drain.is_alive() and time.monotonic() < deadline:
            self._wake_reader()
            self._drain.join(0.05)

    def _read_until_closed(self) -> None:
        while not self._closing.is_set():
            with self.path.open(encoding="utf-8") as fifo:  # blocks until the worker (or `close`) opens it to write
                self.lines.extend(fifo.read().splitlines())

    def _wake_reader(self) -> None:
        """Opens and closes the write end, so a reader blocked in open() returns (and reads nothing)."""
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # ENXIO: no reader is waiting yet; the caller tries again
            if exc.errno not in (errno.ENXIO, errno.ENOENT):
                raise
            return
        with contextlib.suppress(OSError):
            os.close(descriptor)
