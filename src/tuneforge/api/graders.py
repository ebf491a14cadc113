"""Stored graders (OpenAI's grader schema): /graders/createGrader, getGrader, getGraderList, updateGrader,
deleteGrader, validateGrader and runGrader, which tries a stored or inline grader on samples.

Routes are sync: FastAPI runs them in its threadpool, so a python grader's sandboxed subprocesses and a model
grader's judge requests never block the event loop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field

from tuneforge.api.deps import GradersDep
from tuneforge.api.requests import Body
from tuneforge.schemas import ConfigProblem
from tuneforge.service.errors import InvalidInput
from tuneforge.service.graders.checks import MAX_SAMPLES
from tuneforge.service.graders.views import GraderDeleted, GraderList, GraderRun, GraderValidation, GraderView

router = APIRouter(prefix="/graders", tags=["graders"])
GRADER_HELP = ("A grader object (OpenAI's grader schema): type string_check | text_similarity | python | "
               "score_model | label_model | multi, with that type's fields.")
GRADER_EXAMPLE = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                  "reference": "{{item.answer}}", "operation": "eq"}
SAMPLES_HELP = (f"At most {MAX_SAMPLES} of {{\"sample\": {{\"output_text\": …, \"output_json\": …}}, \"item\": "
                "{…the dataset row…}}.")


class CreateGraderBody(Body):
    name: str = Field(description="Unique name: lowercase letters, digits and '-'; training and evaluation "
                      "requests name the grader by it.", examples=["exact-answer"])
    grader: dict[str, Any] = Field(description=GRADER_HELP, examples=[GRADER_EXAMPLE])
    description: str = ""


class UpdateGraderBody(Body):
    id: int
    grader: dict[str, Any] | None = Field(default=None, description=f"The new grader object. {GRADER_HELP}")
    name: str | None = Field(default=None, description="A new name.")
    description: str | None = None


class ValidateGraderBody(Body):
    grader: dict[str, Any] = Field(description=GRADER_HELP, examples=[GRADER_EXAMPLE])


class RunGraderBody(Body):
    grader_id: int | None = Field(default=None, description="A stored grader's id.")
    grader_name: str | None = Field(default=None, description="A stored grader's name.")
    grader: dict[str, Any] | None = Field(default=None, description=f"An inline grader object. {GRADER_HELP}")
    samples: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_SAMPLES, description=SAMPLES_HELP, examples=[
        [{"sample": {"output_text": "Paris"}, "item": {"answer": "Paris"}}]])


@router.post("/createGrader", response_model=GraderView, status_code=201,
             summary="Store a named grader; its object is validated and every problem named (grader.<field>)")
def create_grader(graders: GradersDep, body: CreateGraderBody) -> GraderView:
    return graders.create(body.name, body.grader, body.description)


@router.get("/getGrader", response_model=GraderView, summary="A stored grader, by ?id= or ?name=")
def get_grader(graders: GradersDep, id: int | None = None, name: str | None = None) -> GraderView:
    if id is not None:
        return graders.get(id)
    if name is not None:
        return graders.get(name)
    raise InvalidInput.of([ConfigProblem("id", "is required: ?id=N or ?name=NAME")])


@router.get("/getGraderList", response_model=GraderList, summary="Stored graders by name (filter: ?type=)")
def get_grader_list(graders: GradersDep, type: str | None = Query(None, max_length=32),
                    page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=200, alias="pageSize"),
                    ) -> GraderList:
    return graders.list(type, page, page_size)


@router.post("/updateGrader", response_model=GraderView,
             summary="Replace a stored grader's object (and its name or description)")
def update_grader(graders: GradersDep, body: UpdateGraderBody) -> GraderView:
    return graders.update(body.id, body.grader, body.name, body.description)


@router.delete("/deleteGrader", response_model=GraderDeleted,
               summary="Delete a stored grader (tasks and evaluations keep the objects they resolved)")
def delete_grader(graders: GradersDep, id: int) -> GraderDeleted:
    return graders.delete(id)


@router.post("/validateGrader", response_model=GraderValidation,
             summary="Check a grader object without storing it: valid, or every problem naming its field")
def validate_grader(graders: GradersDep, body: ValidateGraderBody) -> GraderValidation:
    return graders.validate(body.grader)


@router.post("/runGrader", response_model=GraderRun,
             summary="Grade samples with a stored grader (graderId or graderName) or an inline one (grader): each "
             "score with its reason, and the mean")
def run_grader(graders: GradersDep, body: RunGraderBody) -> GraderRun:
    given = [ref for ref in (body.grader_id, body.grader_name, body.grader) if ref is not None]
    if len(given) != 1:
        raise InvalidInput.of([ConfigProblem("graderId", "give one of graderId, graderName or grader (an inline "
                                                         "grader object)")])
    return graders.run(given[0], body.samples)
