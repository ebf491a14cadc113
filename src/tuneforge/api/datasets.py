"""Datasets: /datasets/createDataset (multipart upload, a server path or an object-store URI), createDatasetVersion,
getDatasetList, getDataset, deleteDataset, validateDataset, previewDataset, getDatasetStats."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool

from tuneforge.api.deps import DatasetsDep
from tuneforge.api.limits import current_limits, path_problem
from tuneforge.api.views.datasets import (
    DatasetDeleted,
    DatasetList,
    DatasetPreview,
    DatasetStatistics,
    DatasetValidation,
    DatasetVersionCreated,
    DatasetView,
)
from tuneforge.schemas import ConfigProblem
from tuneforge.service.datasets.datasets import DatasetInput, DatasetRequest
from tuneforge.service.datasets.files import read_chunks
from tuneforge.service.errors import InvalidInput

router = APIRouter(prefix="/datasets", tags=["datasets"])


def _mapping(text: str | None, field: str) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput.of([ConfigProblem(field, f"is not valid JSON ({exc.msg} at column {exc.colno})")]) from exc
    if not isinstance(value, dict):
        raise InvalidInput.of([ConfigProblem(field, 'must be a JSON object, e.g. {"prompt": "question"}')])
    mapping: dict[str, str] = value  # its values are checked with the rest of the request (DatasetService)
    return mapping


def _upload(file: UploadFile) -> tuple[str, Callable[[], Iterable[bytes]]]:
    return file.filename or "data.jsonl", lambda: read_chunks(file.file)


def _check_form(description: str = "", **texts: str | None) -> None:
    """Form fields get the bounds JSON bodies get (requests.Body): no NUL bytes, a bounded description, paths the
    OS could open; each problem names its field."""
    problems = [ConfigProblem(field, "must not contain NUL bytes") for field, text in texts.items()
                if text and "\x00" in text]
    limit = current_limits().description_chars
    if len(description) > limit:
        problems.append(ConfigProblem("description", f"is longer than {limit} characters"))
    if texts.get("path") and (why := path_problem(str(texts["path"]))):
        problems.append(ConfigProblem("path", why))
    if problems:
        raise InvalidInput.of(problems)


def _check_model(model: str | None) -> None:
    """`model` is a folder, a .gguf file, a hub id or 'bundled': a path the OS could open, or refused naming it."""
    if model and (why := path_problem(model)):
        raise InvalidInput.of([ConfigProblem("model", why)])


def _input(files: list[UploadFile] | None, path: str | None, uri: str | None) -> DatasetInput:
    _check_form(path=path, uri=uri, files=",".join(f.filename or "" for f in files or []))
    return DatasetInput(uploads=[_upload(f) for f in files or []], path=path or None, uri=uri or None)


@router.post("/createDataset", response_model=DatasetView, status_code=201,
             summary="Create a dataset from uploaded .json/.jsonl files (multipart), a server path inside the "
             "allowed folders, or an object-store URI; validated in the background")
async def create_dataset(
    datasets: DatasetsDep,
    name: str = Form(..., description="Lowercase letters, digits and '-', ≤ 63 characters, no Chinese."),
    description: str = Form(""),
    owner_id: int | None = Form(None, alias="ownerId"),
    formatting: str | None = Form(None, description="alpaca | sharegpt (openai, text); empty: detected."),
    purpose: str = Form("sft", description="sft | pt | preference | kto"),
    columns: str | None = Form(None, description='dataset_info.json columns as JSON, e.g. {"prompt": "question"}'),
    tags: str | None = Form(None, description="dataset_info.json tags (ShareGPT roles) as JSON"),
    files: list[UploadFile] | None = File(None),
    path: str | None = Form(None, description="A file or folder on the server (train / valid / test files)."),
    uri: str | None = Form(None, description="s3://bucket/prefix (fsspec)."),
) -> DatasetView:
    _check_form(description, name=name, formatting=formatting, purpose=purpose, columns=columns, tags=tags)
    body = DatasetRequest(name=name, description=description, owner_id=owner_id, formatting=formatting or None,
                          purpose=purpose, columns=_mapping(columns, "columns"), tags=_mapping(tags, "tags"))
    created = await run_in_threadpool(datasets.create, body, _input(files, path, uri))
    return DatasetView.model_validate(created)


@router.post("/createDatasetVersion", response_model=DatasetVersionCreated, status_code=201,
             summary="Upload a new immutable version (identical files return the existing version)")
async def create_dataset_version(datasets: DatasetsDep, id: int = Form(...),
                                 files: list[UploadFile] | None = File(None), path: str | None = Form(None),
                                 uri: str | None = Form(None)) -> DatasetVersionCreated:
    version = await run_in_threadpool(datasets.create_version, id, _input(files, path, uri))
    return DatasetVersionCreated.model_validate(version)


@router.get("/getDatasetList", response_model=DatasetList, summary="Datasets, newest first")
def get_dataset_list(datasets: DatasetsDep, owner_id: int | None = Query(None, alias="ownerId"),
                     name: str | None = None, page: int = Query(1, ge=1),
                     page_size: int = Query(20, alias="pageSize", ge=1, le=200)) -> DatasetList:
    return DatasetList.model_validate(datasets.list(owner_id, name, page, page_size))


@router.get("/getDataset", response_model=DatasetView, summary="A dataset with its versions (status, rows, problems)")
def get_dataset(datasets: DatasetsDep, id: int) -> DatasetView:
    return DatasetView.model_validate(datasets.get(id))


@router.delete("/deleteDataset", response_model=DatasetDeleted,
               summary="Delete a dataset and its files; refused while a pending or running task uses it")
def delete_dataset(datasets: DatasetsDep, id: int) -> DatasetDeleted:
    return DatasetDeleted.model_validate(datasets.delete(id))


@router.get("/validateDataset", response_model=DatasetValidation,
            summary="The validation report of a version: every problem as file:line:field:reason")
def validate_dataset(datasets: DatasetsDep, id: int, version: int | None = None) -> DatasetValidation:
    _, _, view = datasets.version(id, version)
    return DatasetValidation.model_validate(view)  # the version's status, rows and report; not its files


@router.get("/getDatasetStats", response_model=DatasetStatistics,
            summary="Rows per split, token lengths, samples over cutoff_len, duplicates, empty responses and a "
            "length histogram (with a model's tokenizer when given)")
def get_dataset_stats(datasets: DatasetsDep, id: int, version: int | None = None, model: str | None = None,
                      cutoff_len: int | None = Query(None, alias="cutoffLen", ge=1)) -> DatasetStatistics:
    _check_model(model)
    return DatasetStatistics.model_validate(datasets.statistics(id, version, model, cutoff_len))


@router.get("/previewDataset", response_model=DatasetPreview,
            summary="The first records rendered through a chat template, with the tokens that are trained on and "
            "those that are masked")
def preview_dataset(datasets: DatasetsDep, id: int, version: int | None = None, template: str = "default",
                    model: str = "bundled", n: int = Query(5, ge=1, le=50),
                    cutoff_len: int = Query(1024, alias="cutoffLen", ge=1),
                    train_on_prompt: bool = Query(False, alias="trainOnPrompt"),
                    mask_history: bool = Query(False, alias="maskHistory"),
                    tokens: bool = Query(False, description="Also list every token with its trained flag.")
                    ) -> DatasetPreview:
    _check_model(model)
    preview = datasets.preview(id, version, template=template, model=model, n=n, cutoff_len=cutoff_len,
                               train_on_prompt=train_on_prompt, mask_history=mask_history, tokens=tokens)
    return DatasetPreview.model_validate(preview)
