"""Evaluation jobs: /evaluations/createEvaluation, getEvaluation, getEvaluationList, stopEvaluation,
deleteEvaluation. A fine-tuned model is scored beside its base on the same prompts, with BLEU / ROUGE and with the
graders the request names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field, field_validator

from tuneforge.api.deps import EvaluationsDep
from tuneforge.api.limits import MAX_ID, current_limits, depth
from tuneforge.api.requests import Body
from tuneforge.api.views.models import EvaluationDeleted, EvaluationDetail, EvaluationList
from tuneforge.schemas.eval_spec import MAX_GRADERS
from tuneforge.schemas.graders import NAME_MAX
from tuneforge.service.models.evaluations import EvaluationRequest

router = APIRouter(prefix="/evaluations", tags=["evaluations"])


class CreateEvaluationBody(Body):
    model_id: int = Field(description="The registered model to evaluate.")
    dataset: str | None = Field(default=None, description="A managed dataset ('name' or 'name@v2'), a bundled one "
                                "('identity') or a file / folder; default: the datasets the model was trained on.")
    split: str = Field(default="test", description="test (falls back to valid when there is none) | valid | train")
    compare_with_base: bool = Field(default=True, description="Score the base model on the same prompts too "
                                    "(before / after report).")
    max_samples: int = Field(default=50, description="Score at most this many samples.")
    max_new_tokens: int = Field(default=128, description="Longest generated answer.")
    cutoff_len: int = Field(default=1024, description="Longest prompt + answer for the loss, in tokens.")
    batch_size: int = 4
    temperature: float = Field(default=0.0, description="0: greedy (reproducible scores).")
    top_p: float = 1.0
    compute_loss: bool = Field(default=True, description="Eval loss and perplexity.")
    predict: bool = Field(default=True, description="Generate answers, score BLEU-4 and ROUGE-1/2/L.")
    show_samples: int = Field(default=5, description="How many best and worst samples the report lists.")
    graders: list[int | str | dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_GRADERS,
        description="Graders scoring each generated answer: stored graders by name or id, or inline grader objects "
        "(OpenAI's grader schema). Each answer is the sample ({{sample.output_text}}), its dataset row the item "
        "({{item.<column>}}, and {{item.reference_answer}}: the reference answer); the report gives each model's "
        "mean score per grader. score_model / label_model graders cannot run in an evaluation.",
        examples=[["exact-answer", {"type": "text_similarity", "name": "close", "input": "{{sample.output_text}}",
                                    "reference": "{{item.reference_answer}}", "evaluation_metric": "rouge_l"}]])

    @field_validator("graders")
    @classmethod
    def _grader_refs(cls, refs: list[int | str | dict[str, Any]]) -> list[int | str | dict[str, Any]]:
        # names reach the database and objects the schema: each is bounded here, as every body value is
        for index, ref in enumerate(refs):
            if isinstance(ref, str) and (not ref or len(ref) > NAME_MAX or "\x00" in ref):
                raise ValueError(f"item {index}: a grader name has 1-{NAME_MAX} characters and no NUL bytes")
            if isinstance(ref, int) and not 0 < ref <= MAX_ID:
                raise ValueError(f"item {index}: a grader id is between 1 and {MAX_ID}")
            if isinstance(ref, dict) and depth(ref) > current_limits().json_depth:
                raise ValueError(f"item {index}: nests deeper than {current_limits().json_depth} levels")
        return refs


class EvaluationIdBody(Body):
    id: int


# A report is only part of a completed evaluation: exclude_unset leaves the key out, as it always was, until then.
@router.post("/createEvaluation", response_model=EvaluationDetail, response_model_exclude_unset=True,
             status_code=201,
             summary="Evaluate a model on a dataset split in the background (loss, perplexity, BLEU-4, ROUGE, graders)")
def create_evaluation(evaluations: EvaluationsDep, body: CreateEvaluationBody) -> EvaluationDetail:
    options = body.model_dump(exclude={"model_id", "dataset", "compare_with_base", "graders"})
    created = evaluations.create(EvaluationRequest(body.model_id, body.dataset, body.compare_with_base, options,
                                                   body.graders))
    return EvaluationDetail.model_validate(created)


@router.get("/getEvaluation", response_model=EvaluationDetail, response_model_exclude_unset=True,
            summary="Status and progress; when completed, the before / after report with the best and worst samples")
def get_evaluation(evaluations: EvaluationsDep, id: int) -> EvaluationDetail:
    return EvaluationDetail.model_validate(evaluations.get(id))


@router.get("/getEvaluationList", response_model=EvaluationList,
            summary="Evaluations, newest first, with their headline scores")
def get_evaluation_list(evaluations: EvaluationsDep, model_id: int | None = Query(None, alias="modelId"),
                        page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=500, alias="pageSize"),
                        ) -> EvaluationList:
    return EvaluationList.model_validate(evaluations.list(model_id, page, page_size))


@router.post("/stopEvaluation", response_model=EvaluationDetail, response_model_exclude_unset=True,
             summary="Stop a running evaluation")
def stop_evaluation(evaluations: EvaluationsDep, body: EvaluationIdBody) -> EvaluationDetail:
    return EvaluationDetail.model_validate(evaluations.stop(body.id))


@router.delete("/deleteEvaluation", response_model=EvaluationDeleted,
               summary="Delete a finished evaluation and its report")
def delete_evaluation(evaluations: EvaluationsDep, id: int) -> EvaluationDeleted:
    return EvaluationDeleted.model_validate(evaluations.delete(id))
