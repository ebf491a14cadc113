"""grader_problems names every field that keeps a well-formed grader from running here, all at once."""

from __future__ import annotations

import pytest

from tuneforge.graders import grader_problems
from tuneforge.graders import problems as problems_module
from tuneforge.graders.sandbox import sandbox_problem
from tuneforge.schemas.graders import GRADER_ADAPTER


def problems(payload: dict[str, object]) -> list[tuple[str, str]]:
    return grader_problems(GRADER_ADAPTER.validate_python(payload))


def test_runnable_graders_have_no_problems() -> None:
    assert problems({"type": "text_similarity", "name": "t", "input": "{{sample.output_text}}",
                     "reference": "{{item.reference_answer}}", "evaluation_metric": "bleu"}) == []
    assert problems({"type": "label_model", "name": "l", "model": "m", "labels": ["a"], "passing_labels": ["a"],
                     "input": [{"role": "user", "content": "{{item.x.y}} {{sample.output_json.z}}"}]}) == []


@pytest.mark.skipif(sandbox_problem() is not None, reason=f"{sandbox_problem()}")
def test_a_runnable_python_grader_has_no_problems() -> None:
    assert problems({"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1\n",
                     "image_tag": ""}) == []


@pytest.mark.parametrize("metric", ["meteor", "cosine"])
def test_metrics_that_need_downloads_are_refused_naming_the_alternatives(metric: str) -> None:
    [(path, reason)] = problems({"type": "text_similarity", "name": "t", "input": "a", "reference": "b",
                                 "evaluation_metric": metric})
    assert path == "evaluation_metric"
    assert metric in reason and "fuzzy_match, bleu, gleu, rouge_1" in reason and "rouge_l" in reason


def test_every_problem_of_a_nested_grader_is_named_by_its_path() -> None:
    found = problems({
        "type": "multi", "name": "m", "calculate_output": "a + b + c.__class__",
        "graders": {
            "a": {"type": "string_check", "name": "a", "input": "{{output_text}}", "reference": "x",
                  "operation": "eq"},
            "b": {"type": "text_similarity", "name": "b", "input": "{{sample.choices}}", "reference": "y",
                  "evaluation_metric": "meteor"},
            "c": {"type": "python", "name": "c", "source": "def grade(sample, item)\n    return 1\n",
                  "image_tag": "2025-05-08"},
            "d": {"type": "python", "name": "d", "source": "def score(sample, item):\n    return 1\n"},
            "e": {"type": "score_model", "name": "e", "model": "m",
                  "input": [{"role": "user", "content": "ok"}, {"role": "user", "content": "{{ item }} {{x.y}}"}]},
        }})
    paths = [path for path, _ in found]
    assert paths == ["calculate_output", "graders.a.input", "graders.b.input", "graders.b.evaluation_metric",
                     "graders.c.image_tag", "graders.c.source", "graders.d.source", "graders.e.input.1.content"]
    reasons = dict(found)
    assert "Attribute is not allowed" in reasons["calculate_output"]
    assert "'sample.…' or 'item.…'" in reasons["graders.a.input"]
    assert "output_text" in reasons["graders.b.input"]
    assert "leave image_tag empty" in reasons["graders.c.image_tag"]
    assert reasons["graders.c.source"].startswith("line 1:")
    assert "no grade(sample, item)" in reasons["graders.d.source"]


def test_a_host_without_the_sandbox_refuses_python_graders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(problems_module, "sandbox_problem", lambda: "sandbox unavailable: no user namespaces")
    found = problems({"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1\n"})
    assert found == [("type", "sandbox unavailable: no user namespaces; python graders cannot run on this host")]
