"""Dataset use-cases: create from an upload / a server path / an object-store URI, new versions by content
hash, validation and statistics in the background, preview, delete (refused while an active task uses it), and the
`name@vN` references tasks pin."""

from __future__ import annotations

import builtins  # in the service's signatures `list` names its list method: the type is builtins.list
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneforge.data.formats import FORMATTINGS, PURPOSES
from tuneforge.planning.paths import confine
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.tasks import ACTIVE_STATUSES, name_problem
from tuneforge.service.datasets import files as files
from tuneforge.service.datasets import inspect as inspect
from tuneforge.service.datasets.jobs import validate_version
from tuneforge.service.datasets.views import dataset_view, version_view
from tuneforge.service.errors import Conflict, InvalidInput, NotFound, get_or_not_found, paging_problems
from tuneforge.service.runtime.jobs import INTERRUPTED_BY_RESTART
from tuneforge.settings import Settings
from tuneforge.store import Database, Dataset, DatasetVersion, Task, TaskDataset

log = logging.getLogger(__name__)
VALIDATE_AGAIN = "Validate again: upload the same files as a new version (createDatasetVersion)"


@dataclass
class DatasetRequest:
    name: str
    description: str = ""
    owner_id: int | None = None
    formatting: str | None = None  # None: detected from the first record
    purpose: str = "sft"
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class DatasetInput:
    """Exactly one of: uploaded files (name, chunk iterator), a server path, an object-store URI."""

    uploads: list[tuple[str, Callable[[], Iterable[bytes]]]] = field(default_factory=list)
    path: str | None = None
    uri: str | None = None


class DatasetService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.root = settings.home / "datasets"
        self.jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneforge-dataset")

    # -- create ------------------------------------------------------------------------------------------------
    def create(self, request: DatasetRequest, source: DatasetInput) -> dict[str, Any]:
        problems = _request_problems(request)
        if problems:
            raise InvalidInput.of(problems)
        with self.db.session() as session:
            if session.scalar(select(Dataset.id).where(Dataset.name == request.name)) is not None:
                raise Conflict(f"name: a dataset named {request.name!r} already exists; upload a new version of it "
                               "(createDatasetVersion) or choose another name", [ConfigProblem("name", "exists")])
        staged = self._stage(source)
        with self.db.session() as session:
            dataset = Dataset(name=request.name, description=request.description, owner_id=request.owner_id,
                              formatting=request.formatting or "", purpose=request.purpose,
                              columns=request.columns or {}, tags=request.tags or {}, created_at=time.time())
            session.add(dataset)
            session.flush()
            version = self._add_version(session, dataset, staged, _source_text(source))
            view = dataset_view(dataset, [version])
        self._validate_later(version.id)
        return view

    def create_version(self, dataset_id: int, source: DatasetInput) -> dict[str, Any]:
        staged = self._stage(source)
        with self.db.session() as session:
            dataset = _dataset(session, dataset_id)
            version = next((v for v in dataset.versions if v.content_hash == staged.content_hash), None)
            unchanged = version is not None
            if version is None:
                version = self._add_version(session, dataset, staged, _source_text(source))
            else:  # identical files: that version already is this upload
                files.discard(staged.folder)
                if not _stopped_short(version):
                    return {**version_view(dataset, version), "unchanged": True}
                # asked again for a validation that a crash or a restart cut short: this is the "validate again"
                version.status, version.progress, version.report = "validating", 0.0, None
            view, version_id = {**version_view(dataset, version), "unchanged": unchanged}, version.id
        self._validate_later(version_id)
        return view

    def _stage(self, source: DatasetInput) -> files.StagedFiles:
        given = sum(bool(x) for x in (source.uploads, source.path, source.uri))
        if given != 1:
            raise InvalidInput.of([ConfigProblem("files", "give exactly one of: uploaded files, a server path, "
                                                          "an object-store URI")])
        folder = files.staging_dir(self.root)
        try:
            if source.uploads:
                for name, chunks in source.uploads:
                    files.write_stream(folder, name, chunks())
            elif source.path:
                path, problem = confine(source.path, self.settings.roots, "path")
                if problem:
                    raise InvalidInput.of([problem])
                if not path or not path.exists():
                    raise InvalidInput.of([ConfigProblem("path", f"{source.path} does not exist")])
                files.copy_server_path(folder, path, self.settings.roots)
            else:
                files.copy_uri(folder, str(source.uri))
            return files.seal(folder)
        except files.DatasetFileError as exc:
            files.discard(folder)
            field_name = str(exc).split(":", 1)[0]
            raise InvalidInput.of([ConfigProblem(field_name, str(exc).split(":", 1)[-1].strip())]) from exc
        except BaseException:
            files.discard(folder)
            raise

    def _add_version(self, session: Session, dataset: Dataset, staged: files.StagedFiles,
                     source: str) -> DatasetVersion:
        number = max((v.version for v in dataset.versions), default=0) + 1
        target = files.publish(staged, self.root / dataset.name / f"v{number}")
        version = DatasetVersion(dataset_id=dataset.id, version=number, content_hash=staged.content_hash,
                                 status="validating", progress=0.0, source=source, path=str(target),
                                 files=staged.splits(), size_bytes=staged.size_bytes, created_at=time.time())
        session.add(version)
        session.flush()
        dataset.versions.append(version)
        return version

    # -- validation (background) -------------------------------------------------------------------------------
    def _validate_later(self, version_id: int) -> None:
        self.jobs.submit(self._validate, version_id)

    def _validate(self, version_id: int) -> None:
        try:
            validate_version(self.db, version_id, self.settings)
            self.refresh_index()
        except Exception:  # a job must never die silently: the version says what happened
            log.exception("validating dataset version %s failed", version_id)
            with self.db.session() as session:
                version = session.get(DatasetVersion, version_id)
                if version is not None:
                    version.status = "invalid"
                    version.report = {"error": f"validation crashed; see the server log. {VALIDATE_AGAIN}"}

    def fail_interrupted_validations(self) -> None:
        """Versions left `validating` by a server that stopped are marked invalid with the reason, never validated
        again on their own: a validation that crashed the server would crash it again at every start."""
        with self.db.session() as session:
            for version in session.scalars(select(DatasetVersion).where(DatasetVersion.status == "validating")):
                version.status = "invalid"
                version.report = {"error": f"{INTERRUPTED_BY_RESTART}. {VALIDATE_AGAIN}"}

    def wait_for_jobs(self) -> None:
        self.jobs.submit(lambda: None).result()

    def refresh_index(self) -> None:
        with self.db.session() as session:
            rows = session.execute(select(Dataset, DatasetVersion).join(DatasetVersion)
                                   .where(DatasetVersion.status == "valid"))
            entries = {f"{d.name}@v{v.version}": _info_entry(d, v, self.root) for d, v in rows}
        files.write_dataset_info(self.root, entries)

    # -- read --------------------------------------------------------------------------------------------------
    def list(self, owner_id: int | None = None, name: str | None = None, page: int = 1,
             page_size: int = 20) -> dict[str, Any]:
        if problems := paging_problems(page, page_size):
            raise InvalidInput.of(problems)
        query = select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id.desc())
        if owner_id is not None:
            query = query.where(Dataset.owner_id == owner_id)
        if name:
            query = query.where(Dataset.name.contains(name, autoescape=True))
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
            rows = session.scalars(query.offset((page - 1) * page_size).limit(page_size))
            items = [dataset_view(d, d.versions, brief=True) for d in rows]
        return {"total": total, "page": page, "pageSize": page_size, "items": items}

    def get(self, dataset_id: int) -> dict[str, Any]:
        with self.db.session() as session:
            dataset = _dataset(session, dataset_id)
            return dataset_view(dataset, dataset.versions)

    def version(self, dataset_id: int, number: int | None) -> tuple[dict[str, Any], Path, dict[str, Any]]:
        """(dataset fields, version folder, version view) of a version (default: the latest)."""
        with self.db.session() as session:
            dataset = _dataset(session, dataset_id)
            version = _version(dataset, number)
            fields = {"formatting": dataset.formatting or None, "purpose": dataset.purpose,
                      "columns": dataset.columns, "tags": dataset.tags}
            return fields, Path(version.path), version_view(dataset, version)

    def statistics(self, dataset_id: int, number: int | None, model: str | None,
                   cutoff_len: int | None) -> dict[str, Any]:
        fields, _, view = self.version(dataset_id, number)
        if view["status"] != "valid":
            raise Conflict(f"{view['reference']} is {view['status']}: statistics need a valid version")
        stats = inspect.statistics(self._detected(fields, view), self._files(view), view["stats"], model,
                                   cutoff_len, self.settings)
        return {"reference": view["reference"], "rows": view["rows"], **stats}

    def preview(self, dataset_id: int, number: int | None, **options: Any) -> dict[str, Any]:
        fields, _, view = self.version(dataset_id, number)
        paths = [p for split in ("train", "valid", "test") for p in self._files(view).get(split, [])]
        return {"reference": view["reference"],
                **inspect.preview(self._detected(fields, view), paths, settings=self.settings, **options)}

    @staticmethod
    def _files(view: dict[str, Any]) -> dict[str, builtins.list[Path]]:
        try:
            return files.version_paths(Path(view["path"]), view["files"])
        except files.DatasetFileError as exc:
            raise Conflict(f"{view['reference']}: {str(exc).split(':', 1)[-1].strip()}") from exc

    @staticmethod
    def _detected(fields: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
        return {**fields, "formatting": fields["formatting"] or (view["report"] or {}).get("formatting")}

    # -- delete ------------------------------------------------------------------------------------------------
    def delete(self, dataset_id: int) -> dict[str, Any]:
        with self.db.session() as session:
            dataset = _dataset(session, dataset_id)
            version_ids = [v.id for v in dataset.versions]
            users = session.execute(select(Task.id, Task.name, Task.status).join(TaskDataset).where(
                TaskDataset.version_id.in_(version_ids), Task.status.in_(ACTIVE_STATUSES))).all()
            if users:
                names = ", ".join(f"{name} ({status})" for _, name, status in users)
                raise Conflict(f"dataset {dataset.name!r} is used by active task(s): {names}; stop or delete them "
                               "first", [ConfigProblem("id", f"in use by {names}")])
            for link in session.scalars(select(TaskDataset).where(TaskDataset.version_id.in_(version_ids))):
                session.delete(link)  # finished tasks keep their config, which names the version
            name = dataset.name
            session.delete(dataset)
        files.discard(self.root / name)
        self.refresh_index()
        return {"id": dataset_id, "deleted": True}

    def close(self) -> None:
        self.jobs.shutdown(wait=False, cancel_futures=True)


def _request_problems(request: DatasetRequest) -> list[ConfigProblem]:
    problems = []
    if why := name_problem(request.name):
        problems.append(ConfigProblem("name", why.replace("'-'", "'-' (no Chinese, ≤ 63 characters)", 1)))
    if request.formatting not in (None, "", *FORMATTINGS):
        problems.append(ConfigProblem("formatting", f"unknown {request.formatting!r}; use alpaca or sharegpt "
                                                    "(openai messages and text also work)"))
    if request.purpose not in PURPOSES:
        problems.append(ConfigProblem("purpose", f"unknown {request.purpose!r}; use one of {', '.join(PURPOSES)}"))
    for key in ("columns", "tags"):
        value = getattr(request, key)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            problems.append(ConfigProblem(key, "must map LLaMA-Factory names to your field names, e.g. "
                                               '{"prompt": "question", "response": "answer"}'))
    return problems


def _stopped_short(version: DatasetVersion) -> bool:
    """A version whose validation never finished (a crash, a restart): its report holds only the reason."""
    return version.status == "invalid" and "error" in (version.report or {})


def _source_text(source: DatasetInput) -> str:
    if source.uploads:
        return "upload: " + ", ".join(name for name, _ in source.uploads)
    return f"path: {source.path}" if source.path else f"uri: {source.uri}"


def _info_entry(dataset: Dataset, version: DatasetVersion, root: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"file_name": str(Path(version.path).relative_to(root))}
    formatting = dataset.formatting or (version.report or {}).get("formatting")
    for key, value in (("formatting", formatting), ("columns", dataset.columns or None),
                       ("tags", dataset.tags or None)):
        if value:
            entry[key] = value
    if dataset.purpose == "preference":
        entry["ranking"] = True
    return entry


def _dataset(session: Session, dataset_id: int) -> Dataset:
    return get_or_not_found(session, Dataset, dataset_id, "dataset")


def _version(dataset: Dataset, number: int | None) -> DatasetVersion:
    if not dataset.versions:
        raise NotFound(f"dataset {dataset.name!r} has no version")
    if number is None:
        return dataset.versions[-1]
    for version in dataset.versions:
        if version.version == number:
            return version
    known = ", ".join(f"v{v.version}" for v in dataset.versions)
    raise NotFound(f"dataset {dataset.name!r} has no version {number} (it has {known})",
                   [ConfigProblem("version", f"no such version; known: {known}")])
