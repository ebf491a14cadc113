"""string_check and text_similarity: OpenAI's operations and metrics, with known values."""

from __future__ import annotations

import random

import pytest

from tuneforge.data.text_metrics import lcs_length
from tuneforge.graders import grade_samples
from tuneforge.graders.text_similarity import lcs_length_bits
from tuneforge.schemas.graders import EvaluationMetric, StringCheckGrader, StringCheckOperation, TextSimilarityGrader


def check(operation: StringCheckOperation, output: str, reference: str) -> float:
    grader = StringCheckGrader(name="s", input="{{sample.output_text}}", reference="{{item.ref}}", operation=operation)
    [result] = grade_samples(grader, [{"output_text": output}], [{"ref": reference}])
    assert result.reason is None
    return result.score


@pytest.mark.parametrize(("operation", "output", "reference", "score"), [
    ("eq", "Paris", "Paris", 1.0),
    ("eq", "paris", "Paris", 0.0),
    ("ne", "paris", "Paris", 1.0),
    ("ne", "Paris", "Paris", 0.0),
    ("like", "The answer is Paris.", "Paris", 1.0),  # like: the reference occurs in the input
    ("like", "The answer is paris.", "Paris", 0.0),
    ("like", "Paris", "The answer is Paris.", 0.0),
    ("ilike", "THE ANSWER IS PARIS.", "Paris", 1.0),
    ("ilike", "London", "Paris", 0.0),
])
def test_string_check_operations(operation: StringCheckOperation, output: str, reference: str, score: float) -> None:
    assert check(operation, output, reference) == score


def similarity(metric: EvaluationMetric, output: str, reference: str) -> float:
    grader = TextSimilarityGrader(name="t", input="{{sample.output_text}}", reference="{{item.ref}}",
                                  evaluation_metric=metric)
    [result] = grade_samples(grader, [{"output_text": output}], [{"ref": reference}])
    assert result.reason is None
    return result.score


HYPOTHESIS, REFERENCE = "the cat sat on the mat", "the cat sat on a mat"


@pytest.mark.parametrize(("metric", "expected"), [
    ("fuzzy_match", 38 / 42),  # LCS 19 characters of 22 + 20
    ("rouge_1", 10 / 11),  # distinct words: 5 of 5 vs 5 of 6 → F1 10/11
    ("rouge_2", 0.6),  # bigrams: 3 shared of 5 and 5
    ("rouge_3", 0.5),
    ("rouge_4", 1 / 3),
    ("rouge_5", 0.0),
    ("rouge_l", 5 / 6),  # LCS 5 words of 6 and 6
    ("gleu", 11 / 18),  # nltk sentence_gleu: min(precision, recall) over 1..4-grams = 11/18
])
def test_text_similarity_known_values(metric: EvaluationMetric, expected: float) -> None:
    assert similarity(metric, HYPOTHESIS, REFERENCE) == pytest.approx(expected)


@pytest.mark.parametrize("metric", ["fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_l"])
def test_identical_texts_score_one_and_disjoint_score_zero(metric: EvaluationMetric) -> None:
    assert similarity(metric, "the quick brown fox jumps", "the quick brown fox jumps") == pytest.approx(1.0)
    assert similarity(metric, "xyzzy", "abcab") == pytest.approx(0.0)


def test_bleu_is_graded_between_zero_and_one() -> None:
    score = similarity("bleu", HYPOTHESIS, REFERENCE)
    assert 0.3 < score < 0.8


def test_chinese_is_scored_on_words() -> None:
    assert similarity("rouge_1", "我喜欢北京", "我喜欢北京") == pytest.approx(1.0)
    assert 0 < similarity("rouge_1", "我喜欢北京", "我喜欢上海") < 1


def test_unavailable_metric_scores_zero_with_a_reason() -> None:
    grader = TextSimilarityGrader(name="t", input="a", reference="a", evaluation_metric="meteor")
    [result] = grade_samples(grader, [{"output_text": "a"}], [{}])
    assert result.score == 0.0 and result.reason is not None and "WordNet" in result.reason


def test_pass_threshold_is_reported() -> None:
    grader = TextSimilarityGrader(name="t", input="{{sample.output_text}}", reference="abcd",
                                  evaluation_metric="fuzzy_match", pass_threshold=0.7)
    passed, failed = grade_samples(grader, [{"output_text": "abcd"}, {"output_text": "zz"}], [{}, {}])
    assert passed.details["passed"] is True and failed.details["passed"] is False


def test_bit_parallel_lcs_matches_the_table() -> None:
    rng = random.Random(7)
    for _ in range(500):
        a = "".join(rng.choice("abcé中") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("abcd中") for _ in range(rng.randint(0, 40)))
        assert lcs_length_bits(a, b) == lcs_length(a, b)


def test_grade_samples_needs_one_item_per_sample() -> None:
    grader = StringCheckGrader(name="s", input="a", reference="a", operation="eq")
    with pytest.raises(ValueError, match="one item per sample"):
        grade_samples(grader, [{"output_text": "a"}], [])
