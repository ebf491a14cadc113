"""The grader schema accepts OpenAI's grader objects and refuses malformed ones with the field named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tuneforge.schemas.graders import GRADER_ADAPTER, MultiGrader, PythonGrader, ScoreModelGrader

OPENAI_EXAMPLES = [
    {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
     "reference": "{{item.reference_answer}}", "operation": "eq"},
    {"type": "text_similarity", "name": "close", "input": "{{sample.output_text}}",
     "reference": "{{item.reference_answer}}", "evaluation_metric": "fuzzy_match", "pass_threshold": 0.8},
    {"type": "python", "name": "py", "source": "def grade(sample, item):\n    return 1.0\n", "image_tag": None},
    {"type": "score_model", "name": "judge", "model": "gpt-4o-mini", "range": [0, 10],
     "sampling_params": {"temperature": 0, "top_p": 1, "max_completions_tokens": 64, "seed": 1},
     "input": [{"role": "system", "content": "Grade it."},
               {"role": "user", "content": {"type": "input_text", "text": "{{sample.output_text}}"}}]},
    {"type": "label_model", "name": "label", "model": "judge", "labels": ["good", "bad"], "passing_labels": ["good"],
     "input": [{"type": "message", "role": "user", "content": "Is {{sample.output_text}} good?"}]},
    {"type": "multi", "name": "both", "calculate_output": "0.5 * exact + 0.5 * close",
     "graders": {"exact": {"type": "string_check", "name": "e", "input": "a", "reference": "a", "operation": "eq"},
                 "close": {"type": "text_similarity", "name": "c", "input": "a", "reference": "b",
                           "evaluation_metric": "rouge_l"}}},
]


@pytest.mark.parametrize("payload", OPENAI_EXAMPLES, ids=lambda p: p["type"])
def test_openai_grader_objects_round_trip(payload: dict[str, object]) -> None:
    grader = GRADER_ADAPTER.validate_python(payload)
    assert grader.type == payload["type"]
    again = GRADER_ADAPTER.validate_json(GRADER_ADAPTER.dump_json(grader))
    assert again == grader


def test_score_model_range_defaults_to_zero_one_and_content_parts_become_text() -> None:
    grader = GRADER_ADAPTER.validate_python(OPENAI_EXAMPLES[3])
    assert isinstance(grader, ScoreModelGrader)
    assert grader.input[1].content == "{{sample.output_text}}"
    assert ScoreModelGrader(name="s", model="m", input=[{"role": "user", "content": "x"}]).score_range == (0.0, 1.0)


@pytest.mark.parametrize(("payload", "field"), [
    ({**OPENAI_EXAMPLES[0], "operation": "regex"}, "operation"),
    ({**OPENAI_EXAMPLES[0], "unknown": 1}, "unknown"),
    ({**OPENAI_EXAMPLES[0], "name": ""}, "name"),
    ({**OPENAI_EXAMPLES[0], "name": "n" * 129}, "name"),
    ({**OPENAI_EXAMPLES[1], "evaluation_metric": "bertscore"}, "evaluation_metric"),
    ({**OPENAI_EXAMPLES[2], "source": "x" * (64 * 1024 + 1)}, "source"),
    ({**OPENAI_EXAMPLES[3], "range": [1, 1]}, "range"),
    ({**OPENAI_EXAMPLES[4], "passing_labels": ["great"]}, "passing_labels"),
    ({**OPENAI_EXAMPLES[5], "graders": {"not a name": OPENAI_EXAMPLES[0]}}, "graders"),
    ({**OPENAI_EXAMPLES[5], "calculate_output": "x" * 1025}, "calculate_output"),
    ({"type": "regex", "name": "r"}, "regex"),
])
def test_malformed_graders_are_refused_naming_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GRADER_ADAPTER.validate_python(payload)
    assert field in str(caught.value)


def test_python_source_limit_counts_utf8_bytes() -> None:
    source = "# " + "é" * (33 * 1024)  # under 64 Ki characters, over 64 KiB
    with pytest.raises(ValidationError, match="bytes"):
        PythonGrader(name="p", source=source)


def test_multi_graders_nest_but_not_without_bound() -> None:
    leaf = OPENAI_EXAMPLES[0]
    nested: dict[str, object] = leaf
    for depth in range(3):
        nested = {"type": "multi", "name": f"m{depth}", "calculate_output": "x", "graders": {"x": nested}}
    assert isinstance(GRADER_ADAPTER.validate_python(nested), MultiGrader)
    too_deep = {"type": "multi", "name": "m4", "calculate_output": "x", "graders": {"x": nested}}
    with pytest.raises(ValidationError, match="nest at most"):
        GRADER_ADAPTER.validate_python(too_deep)
