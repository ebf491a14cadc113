"""Datasets as the API returns them (camelCase)."""

from __future__ import annotations

from typing import Any

from tuneforge.store import Dataset, DatasetVersion


def version_view(dataset: Dataset, version: DatasetVersion, brief: bool = False) -> dict[str, Any]:
    report = version.report or {}
    view = {
        "datasetId": dataset.id, "name": dataset.name, "version": version.version,
        "reference": f"{dataset.name}@v{version.version}", "status": version.status,
        "progress": version.progress, "contentHash": version.content_hash, "source": version.source,
        "files": version.files, "sizeBytes": version.size_bytes, "rows": version.rows,
        "problemCount": report.get("problem_count", 0), "createdAt": version.created_at,
    }
    if not brief:
        view |= {"path": version.path, "report": version.report, "stats": version.stats}
    return view


def dataset_view(dataset: Dataset, versions: list[DatasetVersion], brief: bool = False) -> dict[str, Any]:
    latest = versions[-1] if versions else None
    return {
        "id": dataset.id, "name": dataset.name, "description": dataset.description, "ownerId": dataset.owner_id,
        "formatting": dataset.formatting or ((latest.report or {}).get("formatting") if latest else None),
        "purpose": dataset.purpose, "columns": dataset.columns, "tags": dataset.tags,
        "createdAt": dataset.created_at, "latestVersion": latest.version if latest else None,
        "status": latest.status if latest else None, "rows": latest.rows if latest else None,
        "versions": [version_view(dataset, v, brief=True) for v in versions] if not brief else None,
    }
