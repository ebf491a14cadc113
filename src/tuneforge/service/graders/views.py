"""Graders as /graders/* returns them (camelCase)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneforge.service.views import View


class GraderSummary(View):
    """A stored grader as lists show it (without its object: a python grader's source may be long)."""

    id: int
    name: str
    type: str = Field(description="string_check | text_similarity | python | score_model | label_model | multi")
    description: str
    created_at: float
    updated_at: float


class GraderView(GraderSummary):
    grader: dict[str, Any] = Field(description="The grader object (OpenAI's grader schema), as validated.")
    max_samples_per_run: int = Field(description="The most samples one runGrader request takes with this grader "
                                     "(fewer than 100 when it holds many python or model graders).")


class GraderList(View):
    total: int
    page: int
    page_size: int
    items: list[GraderSummary]


class GraderDeleted(View):
    id: int
    name: str
    deleted: bool


class GraderProblem(View):
    field: str = Field(description="Where in the request, e.g. grader.evaluation_metric.")
    message: str


class GraderValidation(View):
    """What createGrader would say about a grader object, without storing anything."""

    valid: bool
    type: str | None = Field(description="The grader's type, when it has a known one.")
    problems: list[GraderProblem]


class SampleScore(View):
    index: int = Field(description="The sample's position in the request, from 0.")
    score: float
    reason: str | None = Field(description="Why the score is what it is (a failed python grader's error, a judge "
                               "model that is not deployed, …).")
    details: dict[str, Any] = Field(description="The grader's own figures (a multi grader's sub-scores, …).")


class GraderRun(View):
    """A grader tried on samples: each sample's score with its reason, and the mean."""

    grader_id: int | None = Field(description="The stored grader that ran; null for an inline grader object.")
    name: str | None
    type: str
    count: int
    mean: float
    results: list[SampleScore]
