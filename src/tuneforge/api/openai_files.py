"""OpenAI's Files API (/v1/files) for fine-tuning data, so the official `openai` package works against tuneforge:
upload (multipart `file` + `purpose`), list (cursor pages), retrieve, download the content, delete. Errors come in
OpenAI's shape (api.errors reshapes them on /v1), a refused request as OpenAI's 400."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from tuneforge.api.deps import FilesDep
from tuneforge.api.openai_routes import OpenAIRoute
from tuneforge.api.views.openai import OPENAI_ERROR_RESPONSES, FileDeleted, FileList, FileObject
from tuneforge.schemas import ConfigProblem
from tuneforge.service.datasets.files import read_chunks
from tuneforge.service.openai.errors import InvalidRequest
from tuneforge.service.openai.files import FileUpload

# OpenAIRoute: a parameter of the wrong type or range is OpenAI's 400 naming it, as on every /v1 route.
router = APIRouter(prefix="/v1", tags=["openai"], responses=OPENAI_ERROR_RESPONSES, route_class=OpenAIRoute)

# OpenAI's upload purposes: fine-tune is kept; the others are refused by name (400).
Purpose = Literal["fine-tune", "assistants", "batch", "vision", "user_data", "evals"]
FileId = Path(description="The file's id, file-…", max_length=200)


@router.post("/files", response_model=FileObject,
             summary="Upload a fine-tuning file (.jsonl): checked line by line, then a managed dataset version")
async def create_file(
    files: FilesDep,
    file: UploadFile = File(..., description="JSON Lines: chat, preference or reinforcement examples, one a line."),
    purpose: Purpose = Form(..., description="fine-tune; OpenAI's other purposes are refused (400)."),
    expires_anchor: str | None = Form(None, alias="expires_after[anchor]",
                                      description="Refused: tuneforge keeps files until they are deleted."),
    expires_seconds: int | None = Form(None, alias="expires_after[seconds]",
                                       description="Refused: tuneforge keeps files until they are deleted."),
) -> FileObject:
    if expires_anchor is not None or expires_seconds is not None:
        raise InvalidRequest.of([ConfigProblem("expires_after", "tuneforge keeps fine-tune files until they are "
                                                                "deleted; leave expires_after out")])
    upload = FileUpload(file.filename, purpose, lambda: read_chunks(file.file), file.size)
    return FileObject.model_validate(await run_in_threadpool(files.create, upload))


@router.get("/files", response_model=FileList, summary="Files, newest first (OpenAI's cursor pages)")
def list_files(
    files: FilesDep,
    after: str | None = Query(None, max_length=200, description="The id the previous page ended with."),
    limit: int = Query(10_000, ge=1, le=10_000),
    order: Literal["asc", "desc"] = Query("desc", description="By created_at."),
    purpose: str | None = Query(None, max_length=64, description="Only files with this purpose."),
) -> FileList:
    return FileList.model_validate(files.list(after, limit, order, purpose))


@router.get("/files/{file_id}", response_model=FileObject, summary="One file: status, and why it failed its checks")
def retrieve_file(files: FilesDep, file_id: str = FileId) -> FileObject:
    return FileObject.model_validate(files.get(file_id))


@router.delete("/files/{file_id}", response_model=FileDeleted,
               summary="Delete a file and its dataset (the dataset stays while a task names it)")
def delete_file(files: FilesDep, file_id: str = FileId) -> FileDeleted:
    return FileDeleted.model_validate(files.delete(file_id))


# The bytes go out as application/octet-stream; OpenAI's document declares the answer as a JSON string, so both are.
@router.get("/files/{file_id}/content", response_class=FileResponse, summary="The file's bytes, as uploaded",
            responses={200: {"description": "The file's bytes", "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "string"}}}}})
def file_content(files: FilesDep, file_id: str = FileId) -> FileResponse:
    return FileResponse(files.content_path(file_id), media_type="application/octet-stream")
