"""Datasets and their versions, as /datasets/* returns them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tuneforge.service.views import View


class DatasetVersionSummary(View):
    """A version as lists show it: immutable files, their validation status and rows per split."""

    dataset_id: int
    name: str
    version: int
    reference: str = Field(description="How a task names this version: name@vN.")
    status: str = Field(description="validating | valid | invalid")
    progress: float = Field(description="Validation progress, 0–100.")
    content_hash: str
    source: str = Field(description="Where the files came from: an upload, a server path or a URI.")
    files: dict[str, list[str]] = Field(description="File names per split (train / valid / test).")
    size_bytes: int
    rows: dict[str, int] = Field(description="Valid records per split.")
    problem_count: int
    created_at: float


class DatasetVersionDetail(DatasetVersionSummary):
    path: str
    report: dict[str, Any] | None = Field(description="The validation report: every problem as file:line:field.")
    stats: dict[str, Any] | None = Field(description="Statistics computed at validation (see getDatasetStats).")


class DatasetVersionCreated(DatasetVersionDetail):
    unchanged: bool = Field(description="The files were identical to an existing version, which is returned.")


class DatasetView(View):
    id: int
    name: str
    description: str
    owner_id: int | None
    formatting: str | None = Field(description="alpaca | sharegpt | openai | text (given, or detected).")
    purpose: str = Field(description="sft | pt | preference | kto")
    columns: dict[str, str]
    tags: dict[str, str]
    created_at: float
    latest_version: int | None
    status: str | None = Field(description="The latest version's status.")
    rows: dict[str, int] | None = Field(description="The latest version's valid records per split.")
    versions: list[DatasetVersionSummary] | None = Field(description="Every version; null in lists.")


class DatasetList(View):
    total: int
    page: int
    page_size: int
    items: list[DatasetView]


class DatasetValidation(View):
    """A version's validation: status, rows and the report."""

    dataset_id: int
    name: str
    version: int
    reference: str
    status: str
    progress: float
    rows: dict[str, int]
    problem_count: int
    report: dict[str, Any] | None


class DatasetStatistics(BaseModel):
    """A version's statistics; the keys below `reference` and `rows` are the statistics' own (snake_case)."""

    reference: str
    rows: dict[str, int]
    purpose: str
    formatting: str | None
    columns: dict[str, str]
    tags: dict[str, str]
    splits: dict[str, dict[str, Any]] = Field(description="Per split: rows, token lengths, samples over cutoff_len, "
                                              "duplicates, empty responses, a length histogram.")
    overall: dict[str, Any] = Field(description="All splits together.")
    tokens_measured_with: str
    cutoff_len: int | None


class DatasetPreview(View):
    reference: str
    template: str
    model: str
    cutoff_len: int
    samples: list[dict[str, Any]] = Field(description="Each record as training sees it: segments trained on or "
                                          "masked, token counts, truncation (and every token, when asked).")
    skipped: list[str] = Field(description="Problems met on the way to the first valid records.")
    skipped_total: int


class DatasetDeleted(View):
    id: int
    deleted: bool
