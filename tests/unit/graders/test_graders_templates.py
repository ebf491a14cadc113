"""Templates render sample and item values as OpenAI's graders do; a missing reference is noted, not a crash."""

from __future__ import annotations

from tuneforge.graders import grade_samples
from tuneforge.graders.templates import make_sample, normalize_sample, reference_problem, render
from tuneforge.schemas.graders import StringCheckGrader

SAMPLE = make_sample('{"answer": "Paris", "steps": ["a", "b"], "n": 3}')
ITEM = {"reference_answer": "Paris", "meta": {"city": {"name": "Paris"}}, "tags": ["x", "y"], "score": 0.5}


def test_sample_output_json_is_the_parsed_text_or_none() -> None:
    assert SAMPLE["output_json"] == {"answer": "Paris", "steps": ["a", "b"], "n": 3}
    assert make_sample("Paris")["output_json"] is None
    assert make_sample("{not json")["output_json"] is None
    assert normalize_sample({"output_text": "[1, 2]"})["output_json"] == [1, 2]
    assert normalize_sample({"output_text": "x", "output_json": {"given": 1}})["output_json"] == {"given": 1}


def test_references_resolve_into_sample_and_item() -> None:
    missing: list[str] = []
    rendered = render("{{sample.output_json.answer}}|{{ item.meta.city.name }}|{{item.tags.1}}|{{item.tags[0]}}|"
                      "{{item.score}}|{{sample.output_json.steps}}|{{sample.output_json.n}}", SAMPLE, ITEM, missing)
    assert rendered == 'Paris|Paris|y|x|0.5|["a","b"]|3'
    assert missing == []


def test_missing_references_render_empty_and_are_listed() -> None:
    missing: list[str] = []
    assert render("[{{item.nope}}][{{item.tags.7}}][{{sample.output_json.answer.deeper}}]", SAMPLE, ITEM,
                  missing) == "[][][]"
    assert missing == ["item.nope", "item.tags.7", "sample.output_json.answer.deeper"]


def test_a_grader_with_a_missing_reference_scores_and_says_so() -> None:
    grader = StringCheckGrader(name="s", input="{{sample.output_text}}", reference="{{item.answer}}", operation="eq")
    [result] = grade_samples(grader, [{"output_text": ""}], [{"reference": "x"}])
    assert result.score == 1.0  # "" == "": OpenAI renders a missing value as empty too
    assert result.details["missing_references"] == ["item.answer"]


def test_references_that_can_never_resolve_are_problems() -> None:
    assert reference_problem("item.anything.at.all") is None
    assert reference_problem("sample.output_text") is None
    problem = reference_problem("samples.output_text")
    assert problem is not None and "'sample.…' or 'item.…'" in problem
    problem = reference_problem("sample.choices")
    assert problem is not None and "output_text" in problem
