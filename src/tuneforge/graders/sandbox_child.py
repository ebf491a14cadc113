"""The python grader's sandbox process. It is run as a script (`python -I -S sandbox_child.py INPUT`) by
`tuneforge.graders.sandbox`, so it imports nothing but the standard library.

Before any user code runs it isolates itself, and if any step fails it reports `fatal` and runs nothing:

1. root drops to the unprivileged user `nobody`, so user code can neither write the host's files nor read the
   ones only root may read (the platform's database, keys). The standard library stays importable where it lies
   under a directory `nobody` cannot enter (a pyenv Python under /root): its directories are opened before the
   drop and imported through /proc/self/fd/N, which a process may always use for its own descriptors;
2. unshare(CLONE_NEWUSER | CLONE_NEWNET): a network namespace with only a downed loopback — no connection and no
   name lookup can leave the process, whatever the code does (checked: the only interface must be `lo`);
3. resource limits: address space (`memory_mb`), file size, no core dumps, CPU time per sample;
4. an audit hook that refuses sockets, new processes and ctypes with a message naming what was refused. It is
   not the boundary (the namespace, the user and the limits are); it turns "Network is unreachable" into a
   reason a grader's author understands, and stops the easy ways of starting processes outside the kill.

Protocol — INPUT is JSON lines: a header `{"source", "seconds", "memory_mb", "file_mb"}`, then one
`{"index", "sample", "item"}` per sample. The private result channel (the original stdout) gets one JSON line per
event: `{"event": "sandboxed"}` or `{"event": "fatal", "error"}`; `{"event": "loaded"}` or
`{"event": "load_failed", "error"}`; then `{"index", "score"}` or `{"index", "error"}` per sample, in order.
The user's own prints go to stderr, which the parent keeps in a size-limited file.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any, TextIO

NOBODY = 65534
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
ERROR_MAX = 500

_REFUSED_EVENTS = {
    **dict.fromkeys(("socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
                     "socket.gethostbyaddr", "socket.getnameinfo", "socket.sendto", "socket.sendmsg"),
                    "network access is blocked in the grader sandbox"),
    **dict.fromkeys(("os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn",
                     "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg"),
                    "starting or signalling processes is blocked in the grader sandbox"),
    **dict.fromkeys(("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function",
                     "ctypes.cdata", "ctypes.cdata/buffer"),
                    "native code (ctypes) is blocked in the grader sandbox"),
}
_REFUSED_IMPORTS = {"_posixsubprocess": "starting processes is blocked in the grader sandbox"}


def main() -> None:
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")  # the private channel; fd 1 becomes the user's stdout
    os.dup2(2, 1)
    with open(sys.argv[1], encoding="utf-8") as lines:
        header = json.loads(lines.readline())
        cases = [json.loads(line) for line in lines]
    os.unlink(sys.argv[1])
    try:
        isolate(header, len(cases))
    except Exception as exc:  # whatever stopped isolation is reported, and nothing of the user's runs
        emit(results, event="fatal", error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX])
        return
    emit(results, event="sandboxed")
    grade = load(header["source"], results)
    if grade is None:
        return
    for case in cases:
        allow_cpu_seconds(header["seconds"])
        emit(results, index=case["index"], **run_one(grade, case["sample"], case["item"], header["memory_mb"]))


def isolate(header: dict[str, Any], count: int) -> None:
    import ctypes  # loaded now, while its files are readable; the audit hook refuses its use by user code

    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        library_dirs = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in sys.path if os.path.isdir(path)}
        os.chown(".", NOBODY, NOBODY)  # the working directory stays the user code's to write
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        _import_through_descriptors(library_dirs)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWUSER | CLONE_NEWNET) failed: {os.strerror(errno)}")
    interfaces = [name for _, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        raise RuntimeError(f"the network namespace still shows interfaces {interfaces}")
    memory = header["memory_mb"] * 1024 * 1024
    files = header["file_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (files, files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    per_sample = math.ceil(header["seconds"]) + 1
    budget = int(_cpu_used()) + per_sample * (count + 1) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (budget, budget))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file limit fails instead of killing
    sys.addaudithook(_refuse)


def _import_through_descriptors(library_dirs: dict[str, int]) -> None:
    """Point the import system at /proc/self/fd/N for each library directory opened before the drop."""
    def moved(path: str) -> str:
        for directory, fd in library_dirs.items():
            if path == directory or path.startswith(directory + os.sep):
                return f"/proc/self/fd/{fd}" + path[len(directory):]
        return path

    sys.path[:] = [moved(path) for path in sys.path]
    for module in list(sys.modules.values()):  # packages already imported look up their submodules by __path__
        package_path = getattr(module, "__path__", None)
        if isinstance(package_path, list):
            package_path[:] = [moved(path) for path in package_path]
    sys.path_importer_cache.clear()
    import importlib

    importlib.invalidate_caches()
    import fractions  # noqa: F401 — a module not yet loaded: proves imports work as nobody


def _refuse(event: str, args: tuple[Any, ...]) -> None:
    reason = _REFUSED_EVENTS.get(event)
    if reason is None and event == "import" and args and args[0] in _REFUSED_IMPORTS:
        reason, event = _REFUSED_IMPORTS[args[0]], f"import {args[0]}"
    if reason is not None:
        raise PermissionError(f"{reason} ({event})")


def load(source: str, results: TextIO) -> Callable[..., Any] | None:
    """The source's grade function, or None after reporting why there is none."""
    namespace: dict[str, Any] = {"__name__": "grader"}
    try:
        exec(compile(source, "<grader>", "exec"), namespace)  # this is the sandbox that runs it
    except BaseException as exc:  # a SystemExit in the source is also its own failure
        emit(results, event="load_failed", error=describe(exc))
        return None
    grade: Callable[..., Any] | None = namespace.get("grade")
    if not callable(grade):
        emit(results, event="load_failed", error="the source defines no grade(sample, item) function")
        return None
    emit(results, event="loaded")
    return grade


def run_one(grade: Callable[..., Any], sample: Any, item: Any, memory_mb: int) -> dict[str, Any]:
    try:
        value = grade(sample, item)
    except MemoryError:
        return {"error": f"memory limit exceeded ({memory_mb} MB address space)"}
    except BaseException as exc:  # sys.exit() inside grade() is that sample's failure too
        return {"error": f"grade() raised {describe(exc)}"}
    if isinstance(value, bool) or not isinstance(value, int | float):
        return {"error": f"grade() returned {type(value).__name__}, not a number"}
    score = float(value)
    if not math.isfinite(score):
        return {"error": f"grade() returned {score}, not a finite number"}
    return {"score": score}


def describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)
    line = next((f" (line {frame.lineno})" for frame in reversed(where) if frame.filename == "<grader>"), "")
    return f"{type(exc).__name__}: {exc}{line}"[:ERROR_MAX]


def allow_cpu_seconds(seconds: float) -> None:
    """CPU time for the next sample: what is used so far plus this sample's share (the parent's wall-clock kill
    is the main limit; this one also stops a grader that hides its work in threads)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = min(int(_cpu_used()) + math.ceil(seconds) + 1, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emit(results: TextIO, **fields: Any) -> None:
    results.write(json.dumps(fields) + "\n")
    results.flush()


if __name__ == "__main__":
    main()
