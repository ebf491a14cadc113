"""OpenAI's Files API for fine-tuning: an uploaded .jsonl is streamed to HOME/files/<id>.jsonl, checked as OpenAI checks
fine-tuning data (data.openai_files), and a valid one becomes a managed dataset version named after the file id, so a
task trains on it by the reference `file-…@v1` and a fine-tuning job finds it through `training_source`.

A file that fails the checks is kept with status `error` and the problems (line, field, reason) in status_details,
as OpenAI's file object reports them; it has no dataset. The upload is checked before the answer, so a file is
`processed` or `error`, never pending.
"""

from __future__ import annotations

import builtins  # in the service's signatures `list` names its list method: the type is builtins.list
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from tuneforge.data.openai_files import FORMAT_PURPOSES, FileCheck, check_openai_file
from tuneforge.schemas import ConfigProblem
from tuneforge.service.datasets.datasets import DatasetInput, DatasetRequest, DatasetService
from tuneforge.service.errors import NotFound
from tuneforge.service.openai.errors import FileTooLarge, InvalidRequest
from tuneforge.settings import Settings
from tuneforge.store import Database, Dataset, DatasetVersion, OpenAIFile, Task, TaskDataset
from tuneforge.store.scope import as_platform

log = logging.getLogger(__name__)

FINE_TUNE = "fine-tune"
# OpenAI's other upload purposes: known, and refused by name (tuneforge keeps fine-tuning data only).
OTHER_PURPOSES = ("assistants", "batch", "vision", "user_data", "evals")
FILE_ID = re.compile(r"^file-[a-z0-9]{24}$")
SUFFIX = ".jsonl"
MAX_FILENAME = 255  # the column's width
CHUNK = 1024 * 1024
FileFormat = Literal["chat", "preference", "reinforcement"]


@dataclass(frozen=True)
class TrainingSource:
    """What a fine-tuning job trains on, told from a file id: the file's format (which picks the method: chat → SFT,
    preference → DPO, reinforcement → a grader-rewarded stage), the managed dataset version a task names in
    `datasetPath`, and the number of examples."""

    file_id: str
    format: FileFormat
    dataset_ref: str  # e.g. "file-0123456789abcdef01234567@v1"
    lines: int


@dataclass(frozen=True)
class FileUpload:
    """An upload as the API hands it over: the client's file name (shown, never used as a path), the purpose, the
    bytes as chunks and, when the client declared it, the size (refused before reading when over the limit)."""

    filename: str | None
    purpose: str
    chunks: Callable[[], Iterable[bytes]]
    size: int | None = None


class FileService:
    def __init__(self, db: Database, settings: Settings, datasets: DatasetService) -> None:
        self.db = db
        self.settings = settings
        self.datasets = datasets
        self.root = settings.home / "files"

    # -- upload ------------------------------------------------------------------------------------------------
    def create(self, upload: FileUpload) -> dict[str, Any]:
        """Store, check and (when valid) turn into a dataset version; the file object, status processed or error."""
        filename = _checked_upload(upload, self.settings.max_file_bytes)
        file_id = f"file-{secrets.token_hex(12)}"
        path = self._store(file_id, upload)
        row = OpenAIFile(id=file_id, filename=filename, purpose=FINE_TUNE, bytes=path.stat().st_size,
                         created_at=time.time(), expires_at=None, path=str(path))
        try:
            verdict = check_openai_file(path, filename)
            row.format, row.lines = verdict.format, verdict.valid_examples
            self._settle(row, verdict)
            with self.db.session() as session:
                session.add(row)
                session.flush()
                return file_object(row)
        except BaseException:  # nothing half-made stays: neither the bytes nor a dataset without its file
            path.unlink(missing_ok=True)
            if row.dataset_id is not None:
                self.datasets.delete(row.dataset_id)
            raise

    def _store(self, file_id: str, upload: FileUpload) -> Path:
        """The upload's bytes at HOME/files/<id>.jsonl, a chunk at a time; over max_file_bytes nothing is kept."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{file_id}{SUFFIX}"
        limit, written = self.settings.max_file_bytes, 0
        try:
            with path.open("xb") as out:
                for chunk in upload.chunks():
                    written += len(chunk)
                    if written > limit:
                        raise _too_large(limit)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _settle(self, row: OpenAIFile, verdict: FileCheck) -> None:
        """processed, with its dataset version; or error, with the problems."""
        if not verdict.ok or verdict.format is None:
            row.status, row.status_details = "error", verdict.summary()
            return
        request = DatasetRequest(name=row.id, description=f"OpenAI file {row.filename} ({verdict.format})",
                                 formatting="openai", purpose=FORMAT_PURPOSES[verdict.format])
        path = Path(row.path)
        created = self.datasets.create(request, DatasetInput(uploads=[("train.jsonl", lambda: _chunks(path))]))
        self.datasets.wait_for_jobs()  # the version's own validation: a processed file is ready to train on
        _, _, version = self.datasets.version(created["id"], None)
        if version["status"] != "valid":  # the checks and the dataset format disagree: say so, keep nothing
            log.error("file %s passed the OpenAI checks but its dataset version is %s: %s", row.id,
                      version["status"], version["report"])
            self.datasets.delete(created["id"])
            row.status = "error"
            row.status_details = f"the file passed the format checks but not the dataset's: {_first_problems(version)}"
            return
        row.status, row.status_details = "processed", None
        row.dataset_id, row.dataset_version = created["id"], version["version"]

    # -- read --------------------------------------------------------------------------------------------------
    def list(self, after: str | None = None, limit: int = 10_000, order: str = "desc",
             purpose: str | None = None) -> dict[str, Any]:
        """OpenAI's cursor page: the files after `after` (an id) in created_at order, at most `limit`."""
        if order not in ("asc", "desc"):
            raise InvalidRequest.of([ConfigProblem("order", "must be asc or desc")])
        newest_first = order == "desc"
        query = select(OpenAIFile)
        if purpose is not None:
            query = query.where(OpenAIFile.purpose == purpose)
        with self.db.session() as session:
            if after is not None:
                query = query.where(_after(_cursor(session, after), newest_first))
            keys = (OpenAIFile.created_at, OpenAIFile.id)
            query = query.order_by(*(key.desc() if newest_first else key.asc() for key in keys))
            rows = builtins.list(session.scalars(query.limit(limit + 1)))
            data = [file_object(row) for row in rows[:limit]]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": len(rows) > limit}

    def get(self, file_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            return file_object(_file(session, file_id))

    def content_path(self, file_id: str) -> Path:
        """Where the file's bytes are: the path its row stored (the id never becomes a path)."""
        with self.db.session() as session:
            path = Path(_file(session, file_id).path)
        if not path.is_file():
            raise NotFound(f"the content of {file_id} is gone from the server's disk",
                           [ConfigProblem("file_id", "content missing")])
        return path

    # -- delete ------------------------------------------------------------------------------------------------
    def delete(self, file_id: str) -> dict[str, Any]:
        """The file and its bytes; its dataset too, unless a task (of any status) names one of its versions: then the
        dataset stays, so that task can still be read, copied and re-run."""
        with self.db.session() as session:
            row = _file(session, file_id)
            path, dataset_id = Path(row.path), row.dataset_id
            session.delete(row)
        path.unlink(missing_ok=True)
        if dataset_id is not None:
            users = self._tasks_using(dataset_id)
            if users:
                log.info("file %s deleted; its dataset %s stays: task(s) %s use it", file_id, dataset_id, users)
            else:
                self.datasets.delete(dataset_id)
        return {"id": file_id, "object": "file", "deleted": True}

    def _tasks_using(self, dataset_id: int) -> builtins.list[int]:
        # As the platform: a task of another user (an admin's) that trains on this dataset counts too.
        with as_platform(), self.db.session() as session:
            query = (select(Task.id).join(TaskDataset, TaskDataset.task_id == Task.id)
                     .join(DatasetVersion, DatasetVersion.id == TaskDataset.version_id)
                     .where(DatasetVersion.dataset_id == dataset_id))
            return builtins.list(session.scalars(query))

    # -- for fine-tuning jobs ----------------------------------------------------------------------------------
    def training_source(self, file_id: str, field: str) -> TrainingSource:
        """The dataset a job trains on for the file `file_id`, given in the job's request field `field` (e.g.
        "training_file", "validation_file"). NotFound when there is no such file; InvalidInput (400) when it is not
        a fine-tune file or failed its checks (the message carries its status_details). Both name `field`."""
        with self.db.session() as session:
            row = _file(session, file_id, field)
            if row.purpose != FINE_TUNE:
                raise InvalidRequest.of([ConfigProblem(field, f"{file_id} has purpose {row.purpose!r}; "
                                                              f"fine-tuning needs a file uploaded with purpose "
                                                              f"{FINE_TUNE!r}")])
            if row.status != "processed" or row.format is None:
                why = f"its status is {row.status}: {row.status_details or 'no details'}"
                raise InvalidRequest.of([ConfigProblem(field, f"{file_id} cannot be used for fine-tuning: {why}")])
            if row.dataset_id is None or session.get(Dataset, row.dataset_id) is None:
                raise InvalidRequest.of([ConfigProblem(field, f"the dataset made from {file_id} was deleted; "
                                                              "upload the file again")])
            reference = f"{row.id}@v{row.dataset_version}"
            return TrainingSource(row.id, row.format, reference, row.lines or 0)  # type: ignore[arg-type]


def file_object(row: OpenAIFile) -> dict[str, Any]:
    """The row as OpenAI's file object (integer Unix seconds)."""
    return {"id": row.id, "object": "file", "bytes": row.bytes, "created_at": int(row.created_at),
            "expires_at": int(row.expires_at) if row.expires_at is not None else None, "filename": row.filename,
            "purpose": row.purpose, "status": row.status, "status_details": row.status_details}


def _checked_upload(upload: FileUpload, limit: int) -> str:
    """The file name to show, once the purpose, the name and the declared size are acceptable."""
    if upload.purpose in OTHER_PURPOSES:
        raise InvalidRequest.of([ConfigProblem("purpose", f"{upload.purpose!r} files are not kept: tuneforge keeps "
                                                          f"fine-tune files only (purpose {FINE_TUNE!r})")])
    if upload.purpose != FINE_TUNE:
        raise InvalidRequest.of([ConfigProblem("purpose", f"unknown purpose {upload.purpose!r}; tuneforge keeps "
                                                          f"fine-tune files only (purpose {FINE_TUNE!r})")])
    name = upload.filename or ""
    if not name.lower().endswith(SUFFIX) or "\x00" in name:
        raise InvalidRequest.of([ConfigProblem("file", f"{name[:100]!r} is not a .jsonl file: fine-tuning data is "
                                                       "JSON Lines, one example a line")])
    if upload.size is not None and upload.size > limit:
        raise _too_large(limit)
    return name[-MAX_FILENAME:]


def _first_problems(version: dict[str, Any], listed: int = 5) -> str:
    report = version.get("report") or {}
    problems = [f"line {p.get('line')}: {p.get('field')}: {p.get('reason')}" for p in report.get("problems", [])]
    return "; ".join(problems[:listed]) or str(report.get("error", "see the server log"))


def _too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(f"file: the file is larger than the limit of {limit:,} bytes (max_file_bytes)",
                        [ConfigProblem("file", f"over {limit} bytes")])


def _chunks(path: Path) -> Iterable[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _file(session: Session, file_id: str, field: str = "file_id") -> OpenAIFile:
    """The row, through the ORM (so the acting user's scope applies); ids that cannot exist are not looked up."""
    row = session.get(OpenAIFile, file_id) if FILE_ID.fullmatch(file_id) else None
    if row is None:
        raise NotFound(f"no such file: {file_id[:100]!r}", [ConfigProblem(field, "no such file")])
    return row


def _cursor(session: Session, after: str) -> OpenAIFile:
    row = session.get(OpenAIFile, after) if FILE_ID.fullmatch(after) else None
    if row is None:
        raise InvalidRequest.of([ConfigProblem("after", f"no file {after[:100]!r} to list after")])
    return row


def _after(cursor: OpenAIFile, newest_first: bool) -> Any:
    """Rows past `cursor` in (created_at, id) order: equal times are ordered by id, so a page never skips one."""
    if newest_first:
        return or_(OpenAIFile.created_at < cursor.created_at,
                   and_(OpenAIFile.created_at == cursor.created_at, OpenAIFile.id < cursor.id))
    return or_(OpenAIFile.created_at > cursor.created_at,
               and_(OpenAIFile.created_at == cursor.created_at, OpenAIFile.id > cursor.id))
