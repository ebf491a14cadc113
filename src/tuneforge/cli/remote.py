"""The CLI's HTTP client for a tuneforge server: JSON calls, the server's error body, and Server-Sent Events."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DEFAULT_SERVER = "http://127.0.0.1:8321"
SERVER_ENV = "TUNEFORGE_SERVER"
KEY_ENV = "TUNEFORGE_API_KEY"
REQUEST_TIMEOUT_S = 30.0  # createTask reads the dataset and model config before answering
UPLOAD_ANSWER_TIMEOUT_S = 600.0  # after the last byte the server stores and hashes every file before answering


class ServerUnavailable(Exception):
    """Nothing answers at the server URL."""

    def __init__(self, url: str) -> None:
        super().__init__(f"no tuneforge server at {url} — start one with `tuneforge serve`")
        self.url = url


class RemoteError(Exception):
    """The server refused a request: its {"error": {"code", "message", "details"}} body."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.status < 500

    def lines(self) -> list[str]:
        """The message, then one `field: message` line per detail (those that add something)."""
        shown = [self.message]
        for detail in self.details:
            field, text = str(detail.get("field") or ""), str(detail.get("message") or "")
            if not text:  # e.g. does_not_fit's numbers: the message already says them
                continue
            line = f"{field}: {text}" if field else text
            if not self.message.startswith(line):
                shown.append(line)
        return shown


def server_url(given: str | None) -> str:
    """--server, else TUNEFORGE_SERVER, else the address `tuneforge serve` listens on by default."""
    url = (given or os.environ.get(SERVER_ENV) or DEFAULT_SERVER).strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def uses_proxy_settings(url: str) -> bool:
    """HTTP(S)_PROXY applies to remote servers only: a loopback server is reached directly, so a proxy set for the
    internet neither sees the traffic (prompts included) nor breaks the connection."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def api_key(url: str) -> str | None:
    """TUNEFORGE_API_KEY, else — for a server on this machine — the local admin's key that the server wrote at its
    first start (HOME/local-admin.key): a local user needs no extra step."""
    given = os.environ.get(KEY_ENV, "").strip()
    if given:
        return given
    if uses_proxy_settings(url):  # a remote server: its key is not on this machine
        return None
    from tuneforge.settings import Settings

    try:
        return Settings().local_key_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def auth_headers(url: str) -> dict[str, str]:
    key = api_key(url)
    return {"Authorization": f"Bearer {key}"} if key else {}


class ApiClient:
    """One server; every call returns the decoded JSON or raises ServerUnavailable / RemoteError."""

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT_S) -> None:
        import httpx  # here, not at the top: `tuneforge train` and friends start without it

        self.url = url
        self.http = httpx.Client(base_url=url, timeout=timeout, trust_env=uses_proxy_settings(url),
                                 headers=auth_headers(url))

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=_present(params))

    def post(self, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        return self._call("POST", path, params=_present(params), json=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self._call("DELETE", path, params=_present(params))

    def upload(self, path: str, form: dict[str, Any], files: list[Path],
               on_read: Callable[[int], None] | None = None) -> Any:
        """POST a multipart form with `files` as its `files` parts, streamed from disk; `on_read(n)` hears of every
        n bytes read for sending (negative after a rewind), so a caller can draw a progress bar."""
        import httpx

        readers = [CountingReader(file, on_read or _ignore) for file in files]
        parts = [("files", (reader.name, reader, "application/octet-stream")) for reader in readers]
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=UPLOAD_ANSWER_TIMEOUT_S)
        try:  # no files: a plain form (a server path or URI instead of an upload)
            return self._call("POST", path, data=_present(form), files=parts or None, timeout=timeout)
        finally:
            for reader in readers:
                reader.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # refused, DNS, timeout: in every case nothing usable answers
            raise ServerUnavailable(self.url) from exc
        if response.is_error:
            raise _remote_error(response)
        return response.json()

    def events(self, path: str, **params: Any) -> Iterator[tuple[str, Any]]:
        """(event, data) pairs of a Server-Sent Events stream until the server closes it."""
        import httpx

        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=None)  # a quiet task may send nothing for a while
        try:
            with self.http.stream("GET", path, params=_present(params), timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise _remote_error(response)
                yield from parse_events(response.iter_lines())
        except httpx.TransportError as exc:
            raise ServerUnavailable(self.url) from exc


class CountingReader:
    """A file opened for an upload whose reads are counted as httpx streams it (it reads 64 KiB at a time).
    fileno() lets httpx take the size from the file system, so the request has a Content-Length."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        self.name = path.name
        self._file = path.open("rb")
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        before = self._file.tell()
        after = self._file.seek(offset, whence)
        self._on_read(after - before)  # httpx rewinds before sending (and again on a retry)
        return after

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()


def _ignore(_: int) -> None:
    return None


def parse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """SSE framing: `event:` and `data:` lines up to a blank line; comments (`:`) are keep-alives."""
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, _decoded("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                event = value
            elif key == "data":
                data.append(value)
    if data:
        yield event, _decoded("\n".join(data))


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _remote_error(response: httpx.Response) -> RemoteError:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        text = response.text.strip().splitlines()[0][:300] if response.text.strip() else response.reason_phrase
        return RemoteError(response.status_code, "http_error", f"HTTP {response.status_code}: {text}", [])
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    message = str(error.get("message", ""))
    if response.status_code == 401:
        message += f"; set {KEY_ENV} to a key (an admin makes one with `tuneforge users keys create`)"
    return RemoteError(response.status_code, str(error.get("code", "error")), message, details)


# -- createTask / copyTask bodies from a config file and key=value changes --------------------------------------------
# The server resolves relative paths against its own working directory, so paths the user wrote relative to the
# config file (or typed relative to the shell's directory) are made absolute here, where they mean something.
TOP_LEVEL = {"model_name_or_path": "baseModel", "dataset": "datasetPath", "output_dir": "outputPath"}
DATASET_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".arrow", ".txt")
INFO_FILE = "dataset_info.json"


def task_body(config: Path, overrides: list[str], *, name: str, description: str = "", base_model: str | None = None,
              dataset: str | None = None, output: str | None = None, gpus: str | None = None,
              gpu_count: int | None = None, experiment: int | None = None) -> dict[str, Any]:
    """createTask's body: the file's model / dataset / output_dir become baseModel / datasetPath / outputPath
    (the flags win), everything else goes into trainingArgs as written, so the server validates it."""
    from tuneforge.schemas import ConfigError, ConfigProblem, load_config_file, parse_overrides

    raw, path = load_config_file(config)
    raw.update(parse_overrides(overrides))
    args, problems = _split_top_level(raw)
    if gpus and gpu_count is not None:
        problems.append(ConfigProblem("--gpus, --gpu-count", "give one: exact devices (--gpus 0,1) or a count"))
    if problems:
        raise ConfigError(problems, str(path))
    args = localised(args, path.parent)
    in_file = {field: args.pop(field, None) for field in TOP_LEVEL}
    typed = localised({"model_name_or_path": base_model, "dataset": dataset, "output_dir": output}, Path.cwd())
    if dataset and "dataset_dir" in typed:  # --dataset names a dataset_info.json entry under ./data
        args["dataset_dir"] = typed["dataset_dir"]
    flags = {field: typed[field] for field in TOP_LEVEL}
    top = {TOP_LEVEL[field]: flags[field] or in_file[field] for field in TOP_LEVEL}
    gpu_config = {"cuda_visible_devices": gpus} if gpus else {"gpu_count": gpu_count} if gpu_count else {}
    body = {"name": name, "description": description, **top, "trainingArgs": args, "gpuConfig": gpu_config,
            "experimentId": experiment}
    return {key: value for key, value in body.items() if value is not None}


def training_changes(changes: list[str]) -> dict[str, Any]:
    """key=value changes for copyTask; paths in them are relative to the shell's directory."""
    from tuneforge.schemas import parse_overrides

    return localised(parse_overrides(changes), Path.cwd())


def _split_top_level(raw: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """Aliases of the three top-level keys (model:, output_path: …) are renamed to the field, once each."""
    from tuneforge.schemas import ALIASES, ConfigProblem

    args: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    problems = []
    for key, value in raw.items():
        field = ALIASES.get(key, key) if isinstance(key, str) else key
        if field not in TOP_LEVEL:
            args[key] = value
        elif field in given_as:
            problems.append(ConfigProblem(field, f"given twice: as '{given_as[field]}' and '{key}' — keep one"))
        else:
            args[field], given_as[field] = value, key
    return args, problems


def localised(args: dict[str, Any], config_dir: Path) -> dict[str, Any]:
    """Relative model, adapter and dataset paths → absolute, found as `tuneforge train` finds them (next to the
    config file, then in the working directory); output_dir → absolute against the working directory, where
    `tuneforge train` and LLaMA-Factory write it. dataset_info.json names stay names, and dataset_dir then
    points at the folder holding that dataset_info.json."""
    bases = (config_dir, Path.cwd())
    args = dict(args)
    for key in ("model_name_or_path", "adapter_name_or_path", "deepspeed"):
        value = args.get(key)
        if isinstance(value, str) and value and value != "bundled":
            args[key] = ",".join(absolute_if_local(part.strip(), *bases) for part in value.split(","))
    data_dirs = tuple(base / str(args.get("dataset_dir") or "data") for base in bases)
    info_dir = next((d.resolve() for d in data_dirs if (d / INFO_FILE).is_file()), None)
    if isinstance(args.get("dataset_dir"), str):
        args["dataset_dir"] = absolute_if_local(args["dataset_dir"], *bases)
    for key in ("dataset", "eval_dataset"):
        if args.get(key):
            args[key] = _dataset_list(args[key], config_dir, info_dir, data_dirs)
    names = [item for key in ("dataset", "eval_dataset") for item in _items(args.get(key))
             if not _looks_like_path(item)]
    if names and info_dir is not None:
        args["dataset_dir"] = str(info_dir)  # the names live there, not in the server's own ./data
    output = args.get("output_dir")
    if isinstance(output, str) and output:
        args["output_dir"] = str((Path.cwd() / Path(output).expanduser()).resolve())
    return args


def absolute_if_local(value: str, *bases: Path) -> str:
    """The absolute path when `value` names something that exists relative to one of `bases`; else `value` as is
    (a hub id, a dataset name, 'bundled')."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    for base in bases:
        if (base / path).exists():
            return str((base / path).resolve())
    return value


def _dataset_list(value: Any, config_dir: Path, info_dir: Path | None, data_dirs: tuple[Path, ...]) -> str:
    return ",".join(_dataset_item(item, config_dir, info_dir, data_dirs) for item in _items(value))


def _dataset_item(item: str, config_dir: Path, info_dir: Path | None, data_dirs: tuple[Path, ...]) -> str:
    if info_dir is not None and item in _info_names(info_dir):
        return item  # dataset_info.json entries come first, as in LLaMA-Factory
    found = absolute_if_local(item, config_dir, Path.cwd(), *data_dirs)
    if found != item or not _looks_like_path(item):
        return found  # an existing path, or a name the server looks up
    return str((config_dir / item).resolve())  # missing: the server's error then shows the full path meant


def _looks_like_path(item: str) -> bool:
    return "/" in item or os.sep in item or item.startswith("~") or item.lower().endswith(DATASET_SUFFIXES)


def _info_names(info_dir: Path) -> set[str]:
    try:
        info = json.loads((info_dir / INFO_FILE).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return set()
    return set(info) if isinstance(info, dict) else set()


def _items(value: Any) -> list[str]:
    values = value if isinstance(value, list | tuple) else [] if value is None else [value]
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]
