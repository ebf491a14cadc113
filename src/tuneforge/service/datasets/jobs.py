"""Background work on a dataset version: validate every record (file:line:field) and compute its statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from tuneforge.service.datasets.files import version_paths
from tuneforge.settings import Settings
from tuneforge.store import Database, Dataset, DatasetVersion

MAX_LISTED = 100


class FieldMapping(TypedDict):
    """How a dataset's records read (as validation and statistics take it): None means "detect" or "default"."""

    formatting: str | None
    purpose: str
    columns: dict[str, str] | None
    tags: dict[str, str] | None


def version_files(version: DatasetVersion) -> dict[str, list[Path]]:
    return version_paths(Path(version.path), version.files)


def validate_version(db: Database, version_id: int, settings: Settings) -> None:
    from tuneforge.data.statistics import dataset_statistics
    from tuneforge.data.validation import validate_dataset

    with db.session() as session:
        version = session.get(DatasetVersion, version_id)
        if version is None:
            return
        dataset = session.get_one(Dataset, version.dataset_id)  # versions go with their dataset
        mapping: FieldMapping = {"formatting": dataset.formatting or None, "purpose": dataset.purpose,
                                 "columns": dataset.columns or None, "tags": dataset.tags or None}
        by_split = version_files(version)
    all_files = [path for paths in by_split.values() for path in paths]
    last = [0.0]

    def progress(done: int, total: int) -> None:
        fraction = round(90.0 * done / max(total, 1), 1)
        if fraction - last[0] >= 5:  # a database write every 5%
            last[0] = fraction
            _update(db, version_id, progress=fraction)

    report = validate_dataset(all_files, max_listed=MAX_LISTED, progress=progress, **mapping)
    report_json = _relative(report.model_dump(mode="json"), Path(all_files[0]).parent)
    valid = bool(report_json.get("valid"))
    stats = None
    if valid:
        detected: FieldMapping = {**mapping, "formatting": mapping["formatting"] or report_json.get("formatting")}
        stats = dataset_statistics(by_split, tokenizer_file=default_tokenizer(settings), cutoff_len=None,
                                   **detected).model_dump(mode="json")
    rows = _rows(report_json, by_split)
    _update(db, version_id, status="valid" if valid else "invalid", progress=100.0, report=report_json,
            stats=stats, rows=rows)


def default_tokenizer(settings: Settings) -> Path | None:
    """Token counts use the bundled model's tokenizer when it has been converted; otherwise characters."""
    path = settings.models_path / "smollm2-135m-instruct" / "tokenizer.json"
    return path if path.is_file() else None


def _rows(report: dict[str, Any], by_split: dict[str, list[Path]]) -> dict[str, int]:
    per_file = {f["file"]: f["rows_ok"] for f in report.get("files") or []}
    return {split: sum(per_file.get(p.name, 0) for p in paths) for split, paths in by_split.items()}


def _relative(report: dict[str, Any], folder: Path) -> dict[str, Any]:
    """File names in the report as the user uploaded them, not the server's storage path."""
    text = str(folder) + "/"

    def strip(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(text, "")
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, dict):
            return {strip(k): strip(v) for k, v in value.items()}
        return value

    stripped: dict[str, Any] = strip(report)
    return stripped


def _update(db: Database, version_id: int, **values: Any) -> None:
    with db.session() as session:
        version = session.get(DatasetVersion, version_id)
        if version is not None:
            for key, value in values.items():
                setattr(version, key, value)
