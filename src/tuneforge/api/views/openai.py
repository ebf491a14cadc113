"""OpenAI's objects as /v1 returns them, in OpenAI's field names (snake_case, Unix seconds), and its error responses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tuneforge.api.views.deployments import OpenAIErrorBody  # the gateway's: one OpenAI error body for all of /v1

# Declared on the /v1 routes: OpenAI's error body for each status they can answer with (the request-limits check and
# the key check answer /v1 in this shape too).
OPENAI_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": model, "description": description} for status, model, description in (
        (400, OpenAIErrorBody, "The request cannot be taken (e.g. a purpose other than fine-tune, a file that is not "
                               ".jsonl, a parameter of the wrong type)"),
        (401, OpenAIErrorBody, "No valid API key"), (403, OpenAIErrorBody, "Not allowed"),
        (404, OpenAIErrorBody, "No such resource"), (409, OpenAIErrorBody, "The resource's state forbids it"),
        (413, OpenAIErrorBody, "The file or request exceeds a size limit"),
        (422, OpenAIErrorBody, "A parameter has the wrong type or range"))}


class FileObject(BaseModel):
    """An uploaded file, as OpenAI's `File` object."""

    id: str = Field(description="file- and 24 characters; a processed file is the dataset of the same name.")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int = Field(description="Unix seconds.")
    expires_at: int | None = Field(description="Unix seconds; null: the file is kept until deleted.")
    filename: str
    purpose: Literal["fine-tune"]
    status: Literal["uploaded", "processed", "error"] = Field(
        description="processed: valid, a managed dataset version (name@v1) to train on; error: see status_details.")
    status_details: str | None = Field(description="Why the file failed its checks: each problem with its line and "
                                                   "field; null when processed.")


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = Field(description="The first file's id; null for an empty page.")
    last_id: str | None = Field(description="The last file's id (the `after` of the next page); null when empty.")
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool
