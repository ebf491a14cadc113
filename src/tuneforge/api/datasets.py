"""Datasets in the seed's style: /datasets/createDataset (multipart upload, a server path or an object-store URI),
createDatasetVersion, getDatasetList, getDataset, deleteDataset, validateDataset, previewDataset, getDatasetStats."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from tuneforge.schemas import ConfigProblem
from tuneforge.service.datasets.datasets import DatasetInput, DatasetRequest
from tuneforge.service.datasets.files import read_chunks
from tuneforge.service.errors import InvalidInput

router = APIRouter(prefix="/datasets", tags=["datasets"])


def _service(request: Request) -> Any:
    return request.app.state.platform.datasets


def _mapping(text: str | None, field: str) -> dict[str, str]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput.of([ConfigProblem(field, f"is not valid JSON ({exc.msg} at column {exc.colno})")]) from exc
    if not isinstance(value, dict):
        raise InvalidInput.of([ConfigProblem(field, 'must be a JSON object, e.g. {"prompt": "question"}')])
    return value


def _input(files: list[UploadFile] | None, path: str | None, uri: str | None) -> DatasetInput:
    uploads = [(f.filename or "data.jsonl", lambda f=f: read_chunks(f.file)) for f in files or []]
    return DatasetInput(uploads=uploads, path=path or None, uri=uri or None)


@router.post("/createDataset", status_code=201,
             summary="Create a dataset from uploaded .json/.jsonl files (multipart), a server path inside the "
             "allowed folders, or an object-store URI; validated in the background")
async def create_dataset(
    request: Request,
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
) -> dict[str, Any]:
    body = DatasetRequest(name=name, description=description, owner_id=owner_id, formatting=formatting or None,
                          purpose=purpose, columns=_mapping(columns, "columns"), tags=_mapping(tags, "tags"))
    return await run_in_threadpool(_service(request).create, body, _input(files, path, uri))


@router.post("/createDatasetVersion", status_code=201,
             summary="Upload a new immutable version (identical files return the existing version)")
async def create_dataset_version(request: Request, id: int = Form(...), files: list[UploadFile] | None = File(None),
                                 path: str | None = Form(None), uri: str | None = Form(None)) -> dict[str, Any]:
    return await run_in_threadpool(_service(request).create_version, id, _input(files, path, uri))


@router.get("/getDatasetList", summary="Datasets, newest first")
def get_dataset_list(request: Request, owner_id: int | None = Query(None, alias="ownerId"), name: str | None = None,
                     page: int = Query(1, ge=1), page_size: int = Query(20, alias="pageSize", ge=1, le=200)):
    return _service(request).list(owner_id, name, page, page_size)


@router.get("/getDataset", summary="A dataset with its versions (status, rows, problems)")
def get_dataset(request: Request, id: int) -> dict[str, Any]:
    return _service(request).get(id)


@router.delete("/deleteDataset", summary="Delete a dataset and its files; refused while a pending or running task "
               "uses it")
def delete_dataset(request: Request, id: int) -> dict[str, Any]:
    return _service(request).delete(id)


@router.get("/validateDataset", summary="The validation report of a version: every problem as file:line:field:reason")
def validate_dataset(request: Request, id: int, version: int | None = None) -> dict[str, Any]:
    _, _, view = _service(request).version(id, version)
    return {k: view[k] for k in ("datasetId", "name", "version", "reference", "status", "progress", "rows",
                                 "problemCount", "report")}


@router.get("/getDatasetStats", summary="Rows per split, token lengths, samples over cutoff_len, duplicates, empty "
            "responses and a length histogram (with a model's tokenizer when given)")
def get_dataset_stats(request: Request, id: int, version: int | None = None, model: str | None = None,
                      cutoff_len: int | None = Query(None, alias="cutoffLen", ge=1)) -> dict[str, Any]:
    return _service(request).statistics(id, version, model, cutoff_len)


@router.get("/previewDataset", summary="The first records rendered through a chat template, with the tokens that "
            "are trained on and those that are masked")
def preview_dataset(request: Request, id: int, version: int | None = None, template: str = "default",
                    model: str = "bundled", n: int = Query(5, ge=1, le=50),
                    cutoff_len: int = Query(1024, alias="cutoffLen", ge=1),
                    train_on_prompt: bool = Query(False, alias="trainOnPrompt"),
                    mask_history: bool = Query(False, alias="maskHistory"),
                    tokens: bool = Query(False, description="Also list every token with its trained flag.")):
    return _service(request).preview(id, version, template=template, model=model, n=n, cutoff_len=cutoff_len,
                                     train_on_prompt=train_on_prompt, mask_history=mask_history, tokens=tokens)
