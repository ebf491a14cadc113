"""OpenAI's fine-tuning jobs API (/v1/fine_tuning/jobs, …/events, …/checkpoints, …/cancel, …/pause, …/resume) and
its alpha grader endpoints, so code written for OpenAI's `client.fine_tuning` runs against tuneforge unchanged.

Errors come in OpenAI's shape (api.errors reshapes them on /v1). A request OpenAI would refuse is a 400 naming the
field, as OpenAI answers: this router's route class turns FastAPI's validation errors (a type, a range, an unknown
field) into that 400 instead of a 422, which OpenAI never sends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from tuneforge.api.deps import FineTuningDep
from tuneforge.api.openai_routes import OpenAIRoute
from tuneforge.api.views.openai import OPENAI_ERROR_RESPONSES
from tuneforge.schemas import ConfigProblem
from tuneforge.service.openai.errors import InvalidRequest
from tuneforge.service.openai.job_requests import (
    METADATA_KEY_CHARS,
    METADATA_VALUE_CHARS,
    GraderRunRequest,
    GraderValidateRequest,
    JobCreateRequest,
)
from tuneforge.service.openai.jobs import MAX_LIMIT
from tuneforge.service.openai.views import (
    FineTuningJobView,
    GraderRunResult,
    GraderValidated,
    JobCheckpointList,
    JobEventList,
    JobList,
)

router = APIRouter(prefix="/v1", tags=["openai"], responses=OPENAI_ERROR_RESPONSES, route_class=OpenAIRoute)
JobId = Annotated[str, Path(description="The job's id, ftjob-…", max_length=64)]
After = Annotated[str | None, Query(description="The id the previous page ended with.", max_length=128)]
METADATA_FILTER = {"name": "metadata", "in": "query", "required": False, "style": "deepObject", "explode": True,
                   # no value type: in a query every value is text ("null" included), so none could be refused
                   "schema": {"type": ["object", "null"],
                              "propertyNames": {"minLength": 1, "maxLength": METADATA_KEY_CHARS},
                              "additionalProperties": {"maxLength": METADATA_VALUE_CHARS}},
                   "description": "Only jobs with these metadata pairs: metadata[k]=v; metadata=null: jobs without."}


@router.post("/fine_tuning/jobs", response_model=FineTuningJobView,
             summary="Create a fine-tuning job: a LoRA task on the model, from an uploaded file")
def create_job(fine_tuning: FineTuningDep, body: JobCreateRequest) -> FineTuningJobView:
    return fine_tuning.create(body)


@router.get("/fine_tuning/jobs", response_model=JobList, summary="Fine-tuning jobs, newest first",
            openapi_extra={"parameters": [METADATA_FILTER]})
def list_jobs(fine_tuning: FineTuningDep, request: Request, after: After = None,
              limit: int = Query(20, ge=1, le=MAX_LIMIT)) -> JobList:
    pairs, without = _metadata_filter(request)
    return fine_tuning.list(after, limit, pairs, without)


def _metadata_filter(request: Request) -> tuple[dict[str, str], bool]:
    """OpenAI's filter: metadata[k]=v pairs (all must match), or metadata=null for jobs without metadata."""
    pairs: dict[str, str] = {}
    without = False
    for name, value in request.query_params.multi_items():
        if name == "metadata":
            if value != "null":
                raise InvalidRequest.of([ConfigProblem("metadata", "filter with metadata[key]=value, or metadata=null "
                                                                   "for jobs without metadata")])
            without = True
        elif name.startswith("metadata[") and name.endswith("]"):
            key = name[len("metadata["):-1]
            if not 1 <= len(key) <= METADATA_KEY_CHARS or len(value) > METADATA_VALUE_CHARS:  # OpenAI's limits
                raise InvalidRequest.of([ConfigProblem(name, f"keys have 1 to {METADATA_KEY_CHARS} characters, "
                                                             f"values at most {METADATA_VALUE_CHARS}")])
            pairs[key] = value
    if without and pairs:
        raise InvalidRequest.of([ConfigProblem("metadata", "metadata=null cannot be combined with metadata[k]=v")])
    return pairs, without


@router.get("/fine_tuning/jobs/{fine_tuning_job_id}", response_model=FineTuningJobView, summary="A fine-tuning job")
def retrieve_job(fine_tuning: FineTuningDep, fine_tuning_job_id: JobId) -> FineTuningJobView:
    return fine_tuning.get(fine_tuning_job_id)


@router.post("/fine_tuning/jobs/{fine_tuning_job_id}/cancel", response_model=FineTuningJobView,
             summary="Cancel a job at once (its task stops at the end of the current step)")
def cancel_job(fine_tuning: FineTuningDep, fine_tuning_job_id: JobId) -> FineTuningJobView:
    return fine_tuning.cancel(fine_tuning_job_id)


@router.post("/fine_tuning/jobs/{fine_tuning_job_id}/pause", response_model=FineTuningJobView,
             summary="Pause a running job: it saves a checkpoint at the end of the current step and stops")
def pause_job(fine_tuning: FineTuningDep, fine_tuning_job_id: JobId) -> FineTuningJobView:
    return fine_tuning.pause(fine_tuning_job_id)


@router.post("/fine_tuning/jobs/{fine_tuning_job_id}/resume", response_model=FineTuningJobView,
             summary="Resume a paused job from the checkpoint its pause saved")
def resume_job(fine_tuning: FineTuningDep, fine_tuning_job_id: JobId) -> FineTuningJobView:
    return fine_tuning.resume(fine_tuning_job_id)


@router.get("/fine_tuning/jobs/{fine_tuning_job_id}/events", response_model=JobEventList,
            summary="A job's events, newest first: status changes, each step's metrics, checkpoints")
def list_job_events(fine_tuning: FineTuningDep, fine_tuning_job_id: JobId, after: After = None,
                    limit: int = Query(20, ge=1, le=MAX_LIMIT)) -> JobEventList:
    return fine_tuning.events(fine_tuning_job_id, after, limit)


@router.get("/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", response_model=JobCheckpointList,
            summary="A job's checkpoints, newest first, each a registered model")
def list_job_checkpoints(fine_tuning: FineTuningDep, fine_tuning_job_id: JobId, after: After = None,
                         limit: int = Query(10, ge=1, le=MAX_LIMIT)) -> JobCheckpointList:
    return fine_tuning.checkpoints(fine_tuning_job_id, after, limit)


@router.post("/fine_tuning/alpha/graders/run", response_model=GraderRunResult,
             summary="Grade one model sample against its item with a grader object")
def run_grader(fine_tuning: FineTuningDep, body: GraderRunRequest) -> GraderRunResult:
    return fine_tuning.run_grader(body)


@router.post("/fine_tuning/alpha/graders/validate", response_model=GraderValidated,
             summary="Check a grader object: the grader as read, or a 400 naming each field at fault")
def validate_grader(fine_tuning: FineTuningDep, body: GraderValidateRequest) -> GraderValidated:
    return fine_tuning.validate_grader(body)
