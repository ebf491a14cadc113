"""A multi grader combines sub-grader scores by a formula evaluated over a whitelist, never by eval()."""

from __future__ import annotations

import math

import pytest

from tuneforge.graders import grade_samples
from tuneforge.graders.formula import FormulaError, parse_formula
from tuneforge.schemas.graders import MultiGrader, StringCheckGrader, TextSimilarityGrader


@pytest.mark.parametrize(("formula", "expected"), [
    ("a + b", 1.5),
    ("(a + b) / 2", 0.75),
    ("a * 0.3 - b", -0.2),
    ("-a + +b", -0.5),
    ("a ^ 2 + b ** 2", 1.25),
    ("2 * b ^ 2", 0.5),  # ^ binds tighter than *, as in mathematics
    ("2 ^ 3 ^ 2", 512.0),  # and to the right
    ("min(a, b, 0.7) + max(a, b)", 1.5),
    ("abs(b - a) + floor(2.7) + ceil(0.2)", 3.5),
    ("exp(0) + sqrt(4) + log(1)", 3.0),
    ("1e-3 * 1000", 1.0),
])
def test_formula_values(formula: str, expected: float) -> None:
    assert parse_formula(formula, {"a", "b"}).evaluate({"a": 1.0, "b": 0.5}) == pytest.approx(expected)


@pytest.mark.parametrize(("formula", "says"), [
    ("__import__('os').system('true')", "only the functions"),
    ("a.__class__", "Attribute is not allowed"),
    ("a.real", "Attribute is not allowed"),
    ("(lambda: 1)()", "only the functions"),
    ("[a for a in b]", "not allowed"),
    ("'text'", "only numbers"),
    ("True + a", "only numbers"),
    ("c + a", "unknown name 'c'"),
    ("exp + a", "unknown name 'exp'"),
    ("9 ** 9 ** 9", "too large"),
    ("2 ^ 100000", "too large"),
    ("a if b else 1", "not allowed"),
    ("a < b", "not allowed"),
    ("a % 2", "not allowed"),
    ("a // 2", "not allowed"),
    ("min()", "at least one"),
    ("sqrt(a, b)", "one argument"),
    ("max(*b)", "plain arguments"),
    ("a +", "not a formula"),
    ("a; b", "not a formula"),
    ("(" * 300 + "a" + ")" * 300, "not a formula"),
    ("-" * 40 + "a", "nests deeper"),
    ("+".join(["a"] * 200), "too long"),
])
def test_formulas_outside_the_whitelist_are_refused(formula: str, says: str) -> None:
    with pytest.raises(FormulaError, match=says):
        parse_formula(formula, {"a", "b"})


@pytest.mark.parametrize("formula", ["a / (b - b)", "2 ^ (a * 1000)", "log(b - b)", "sqrt(-1)", "exp(1000)",
                                     "(-8) ^ 0.5"])
def test_runtime_arithmetic_errors_are_formula_errors(formula: str) -> None:
    with pytest.raises(FormulaError):
        parse_formula(formula, {"a", "b"}).evaluate({"a": 1.0, "b": 0.5})


def test_multi_grader_combines_sub_scores_per_sample() -> None:
    grader = MultiGrader(name="m", calculate_output="0.75 * exact + 0.25 * close", graders={
        "exact": StringCheckGrader(name="e", input="{{sample.output_text}}", reference="{{item.ref}}",
                                   operation="eq"),
        "close": TextSimilarityGrader(name="c", input="{{sample.output_text}}", reference="{{item.ref}}",
                                      evaluation_metric="fuzzy_match"),
    })
    results = grade_samples(grader, [{"output_text": "abcd"}, {"output_text": "abxy"}], [{"ref": "abcd"}] * 2)
    assert results[0].score == pytest.approx(1.0)
    assert results[1].score == pytest.approx(0.25 * 0.5)
    assert results[1].details["scores"] == {"exact": 0.0, "close": pytest.approx(0.5)}


def test_multi_grader_reports_a_failing_formula_and_failed_sub_graders() -> None:
    grader = MultiGrader(name="m", calculate_output="ok / bad", graders={
        "ok": StringCheckGrader(name="o", input="a", reference="a", operation="eq"),
        "bad": TextSimilarityGrader(name="b", input="a", reference="a", evaluation_metric="cosine"),
    })
    [result] = grade_samples(grader, [{"output_text": ""}], [{}])
    assert result.score == 0.0 and result.reason is not None and "calculate_output failed" in result.reason
    assert "embedding" in result.details["errors"]["bad"]
    assert not math.isnan(result.score)


def test_multi_grader_with_an_unparseable_formula_scores_zero_with_the_reason() -> None:
    grader = MultiGrader(name="m", calculate_output="__import__('os')", graders={
        "a": StringCheckGrader(name="a", input="a", reference="a", operation="eq")})
    [result] = grade_samples(grader, [{"output_text": ""}], [{}])
    assert result.score == 0.0 and result.reason is not None and "calculate_output" in result.reason
