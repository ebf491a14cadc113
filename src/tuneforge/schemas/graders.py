"""OpenAI's grader objects (the `graders` of fine-tuning reinforcement jobs and of evals), as pydantic models.

A grader scores a model's answer (the *sample*) against a dataset row (the *item*). The shapes and names follow
OpenAI's API reference so a grader written for OpenAI is accepted here unchanged:

- `string_check`: compare two templated strings (eq / ne / like / ilike).
- `text_similarity`: a similarity metric between two templated strings, 0..1.
- `python`: the `grade(sample, item) -> float` function of the given source, run in a sandbox.
- `score_model`: a judge model replies with a number in `range`.
- `label_model`: a judge model picks a label; 1 when it is one of `passing_labels`, else 0.
- `multi`: named sub-graders combined by the `calculate_output` formula.

Strings may hold templates: `{{sample.output_text}}`, `{{sample.output_json.x}}`, `{{item.field}}`, `{{item.a.b}}`.

These models check the *shape* only (types, bounds, labels that exist, a range that is a range). Whether a
grader can run on this host (a metric that needs data we do not ship, a formula that does not parse, a python
source without `grade`, a sandbox that cannot be set up) is `tuneforge.graders.grader_problems`' question:
the schema mirrors OpenAI's vocabulary, so a stored grader stays readable even when it cannot run here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

NAME_MAX = 128
TEMPLATE_MAX = 16_384  # one templated string (input / reference / message content)
PYTHON_SOURCE_MAX = 64 * 1024  # bytes of UTF-8, OpenAI's limit for a python grader's source
FORMULA_MAX = 1024
MODEL_MAX = 256
LABEL_MAX = 128
LABELS_MAX = 64
MESSAGES_MAX = 32
SUB_GRADERS_MAX = 16  # per multi grader
NESTING_MAX = 3  # multi inside multi inside multi, no deeper

StringCheckOperation = Literal["eq", "ne", "like", "ilike"]
# OpenAI's metric names, all of them: the schema accepts every one, grader_problems says which cannot run here.
EvaluationMetric = Literal["fuzzy_match", "bleu", "gleu", "meteor", "cosine",
                           "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l"]
MessageRole = Literal["system", "developer", "user", "assistant"]

GraderName = Annotated[str, Field(min_length=1, max_length=NAME_MAX, description="The name of the grader.")]
Template = Annotated[str, Field(max_length=TEMPLATE_MAX,
                                description="Text; may hold {{sample.output_text}} / {{item.field}} templates.")]
# A sub-grader's key is a variable of the multi grader's formula, so it must read as one.
_FORMULA_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class _GraderBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: GraderName


class StringCheckGrader(_GraderBase):
    """1 when `input` and `reference` (both rendered) satisfy `operation`, else 0. `eq` / `ne` compare exactly;
    `like` is "reference occurs in input", `ilike` the same ignoring case."""

    type: Literal["string_check"] = "string_check"
    input: Template
    reference: Template
    operation: StringCheckOperation


class TextSimilarityGrader(_GraderBase):
    """A similarity of `input` to `reference` (both rendered), 0..1, by `evaluation_metric`."""

    type: Literal["text_similarity"] = "text_similarity"
    input: Template
    reference: Template
    evaluation_metric: EvaluationMetric
    pass_threshold: float | None = Field(default=None, ge=0, le=1,
                                         description="A score at or above it counts as a pass (reported in details).")


class PythonGrader(_GraderBase):
    """`source` defines `grade(sample, item) -> float`; it runs in a sandbox (no network, bounded time and memory)."""

    type: Literal["python"] = "python"
    source: str = Field(min_length=1, max_length=PYTHON_SOURCE_MAX,
                        description="Python source defining grade(sample, item) -> float.")
    image_tag: str | None = Field(default=None, max_length=NAME_MAX,
                                  description="OpenAI's container image; only empty is runnable here.")
    pass_threshold: float | None = None

    @field_validator("source")
    @classmethod
    def _source_bytes(cls, source: str) -> str:
        # max_length counts characters; the limit is on the bytes a user uploads
        if len(source.encode("utf-8")) > PYTHON_SOURCE_MAX:
            raise ValueError(f"source is over {PYTHON_SOURCE_MAX} bytes of UTF-8")
        return source


class _ContentText(BaseModel):
    """OpenAI's `{"type": "input_text" | "output_text", "text": ...}` content part, accepted for a message's content."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["input_text", "output_text"]
    text: Template


class GraderMessage(BaseModel):
    """One message of a model grader's prompt; `content` may hold templates."""

    model_config = ConfigDict(extra="forbid")

    role: MessageRole
    content: Template
    type: Literal["message"] | None = None  # OpenAI's EvalItem carries it; it changes nothing

    @field_validator("content", mode="before")
    @classmethod
    def _text_part(cls, content: Any) -> Any:
        # OpenAI also accepts a text content part in place of a plain string; it means the same text
        if isinstance(content, dict):
            return _ContentText.model_validate(content).text
        return content


class ScoreModelSamplingParams(BaseModel):
    """OpenAI's names, including its spelling `max_completions_tokens`."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_completions_tokens: int | None = Field(default=None, ge=1, le=32_768)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None


class ScoreModelGrader(_GraderBase):
    """A judge model reads `input` (rendered) and replies with a score in `range`."""

    type: Literal["score_model"] = "score_model"
    model: str = Field(min_length=1, max_length=MODEL_MAX)
    input: list[GraderMessage] = Field(min_length=1, max_length=MESSAGES_MAX)
    range: tuple[float, float] | None = Field(default=None, description="[min, max] of the score; default [0, 1].")
    sampling_params: ScoreModelSamplingParams | None = None
    pass_threshold: float | None = None

    @field_validator("range")
    @classmethod
    def _range_is_a_range(cls, bounds: tuple[float, float] | None) -> tuple[float, float] | None:
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"range must be [min, max] with min < max, got {list(bounds)}")
        return bounds

    @property
    def score_range(self) -> tuple[float, float]:
        return self.range if self.range is not None else (0.0, 1.0)


class LabelModelGrader(_GraderBase):
    """A judge model reads `input` (rendered) and picks one of `labels`: 1 when it is in `passing_labels`, else 0."""

    type: Literal["label_model"] = "label_model"
    model: str = Field(min_length=1, max_length=MODEL_MAX)
    input: list[GraderMessage] = Field(min_length=1, max_length=MESSAGES_MAX)
    labels: list[Annotated[str, Field(min_length=1, max_length=LABEL_MAX)]] = Field(min_length=1,
                                                                                   max_length=LABELS_MAX)
    passing_labels: list[Annotated[str, Field(min_length=1, max_length=LABEL_MAX)]] = Field(min_length=1,
                                                                                           max_length=LABELS_MAX)

    @model_validator(mode="after")
    def _passing_labels_are_labels(self) -> LabelModelGrader:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must differ, got {self.labels}")
        unknown = [label for label in self.passing_labels if label not in self.labels]
        if unknown:
            raise ValueError(f"passing_labels must be a subset of labels; not in labels: {unknown}")
        return self


class MultiGrader(_GraderBase):
    """Named sub-graders, combined per sample by `calculate_output`, a formula over their names with + - * /,
    ^ or ** (power), parentheses, numbers and min / max / abs / floor / ceil / exp / sqrt / log."""

    type: Literal["multi"] = "multi"
    graders: dict[str, Grader] = Field(min_length=1, max_length=SUB_GRADERS_MAX)
    calculate_output: str = Field(min_length=1, max_length=FORMULA_MAX)

    @field_validator("graders")
    @classmethod
    def _names_are_variables(cls, graders: dict[str, Grader]) -> dict[str, Grader]:
        bad = [key for key in graders if not _FORMULA_VARIABLE.fullmatch(key)]
        if bad:
            raise ValueError(f"sub-grader keys are the formula's variables, so each must be a name of letters, "
                             f"digits and _ not starting with a digit (at most {NAME_MAX}); got {bad}")
        return graders

    @model_validator(mode="after")
    def _bounded_nesting(self) -> MultiGrader:
        if multi_depth(self) > NESTING_MAX:
            raise ValueError(f"multi graders nest at most {NESTING_MAX} deep")
        return self


Grader = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader | MultiGrader,
    Field(discriminator="type"),
]
MultiGrader.model_rebuild()

GRADER_ADAPTER: TypeAdapter[Grader] = TypeAdapter(Grader)
GRADER_TYPES = ("string_check", "text_similarity", "python", "score_model", "label_model", "multi")


def multi_depth(grader: Grader) -> int:
    """How many multi graders deep `grader` goes (0 for a plain grader)."""
    if not isinstance(grader, MultiGrader):
        return 0
    return 1 + max((multi_depth(sub) for sub in grader.graders.values()), default=0)
