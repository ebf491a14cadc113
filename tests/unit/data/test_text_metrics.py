"""BLEU-4 / ROUGE-1/2/L of generated answers, on LLaMA-Factory's 0-100 scale, with jieba segmentation for Chinese."""

from __future__ import annotations

import math

import pytest

from tuneforge.data.text_metrics import (
    TextScores,
    bleu_4,
    lcs_length,
    mean_scores,
    rouge_l,
    rouge_n,
    score_text,
    segment_words,
)


@pytest.mark.parametrize("text", ["The capital of France is Paris.", "我是一个学生，我喜欢训练模型。", "7 8 9 10"])
def test_identical_text_scores_100_everywhere(text: str) -> None:
    assert score_text(text, text) == TextScores(100.0, 100.0, 100.0, 100.0)


def test_disjoint_text_scores_about_zero() -> None:
    assert score_text("xyzw", "abcd") == TextScores(0.0, 0.0, 0.0, 0.0)
    assert score_text("你好", "Paris") == TextScores(0.0, 0.0, 0.0, 0.0)
    # no shared word; BLEU counts characters, so the shared space alone gives a small smoothed score
    scores = score_text("xyz qqq", "abc def")
    assert (scores.rouge_1, scores.rouge_2, scores.rouge_l) == (0.0, 0.0, 0.0)
    assert 0 < scores.bleu_4 < 10


def test_empty_prediction_scores_zero() -> None:
    assert score_text("", "The capital of France is Paris.") == TextScores(0.0, 0.0, 0.0, 0.0)
    assert score_text("   ", "Paris") == TextScores(0.0, 0.0, 0.0, 0.0)


def test_rouge_hand_worked_english() -> None:
    # pred words: the cat sat on the mat; ref: the cat lay on the mat
    # distinct unigrams 5 vs 5, shared {the, cat, on, mat} = 4 -> P = R = 0.8 -> F1 = 80
    # distinct bigrams 5 vs 5, shared (the cat) (on the) (the mat) = 3 -> 60
    # LCS "the cat on the mat" = 5 of 6 words each side -> 83.3333
    scores = score_text("the cat sat on the mat", "the cat lay on the mat")
    assert scores.rouge_1 == pytest.approx(80.0)
    assert scores.rouge_2 == pytest.approx(60.0)
    assert scores.rouge_l == pytest.approx(83.3333)


def test_rouge_counts_distinct_ngrams_and_splits_punctuation() -> None:
    assert segment_words("Paris, France.") == ["Paris", ",", "France", "."]
    # "a a a b" has distinct unigrams {a, b}; both are in the reference "a b" -> P = R = 1
    assert rouge_n(["a", "a", "a", "b"], ["a", "b"], 1) == 1.0
    # LCS is not distinct: "a a a b" vs "a b" shares 2 of 4 words -> P = 0.5, R = 1 -> F1 = 2/3
    assert rouge_l(["a", "a", "a", "b"], ["a", "b"]) == pytest.approx(2 / 3)
    assert lcs_length("ABCBDAB", "BDCABA") == 4


def test_bleu_hand_worked_brevity_penalty() -> None:
    # characters a b c d vs a b c d e: every n-gram precision is 1, brevity penalty exp(1 - 5/4)
    assert bleu_4("abcd", "abcde") == pytest.approx(math.exp(-0.25))
    assert score_text("abcd", "abcde").bleu_4 == pytest.approx(77.8801)


def test_bleu_hand_worked_smoothing_method3() -> None:
    # a b x d vs a b c d: p1 = 3/4, p2 = 1/3, p3 = 0/2 -> 1/(2*2), p4 = 0/1 -> 1/(4*1); equal lengths, no penalty
    expected = (3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25
    assert bleu_4("abxd", "abcd") == pytest.approx(expected)
    assert expected == pytest.approx(0.353553, abs=1e-6)


def test_chinese_is_segmented_into_words_by_jieba() -> None:
    assert segment_words("我是一个学生") == ["我", "是", "一个", "学生"]
    scores = score_text("我是学生", "我是一个学生")
    # jieba words: 我/是/学生 vs 我/是/一个/学生 -> P = 1, R = 3/4 -> F1 = 6/7
    assert scores.rouge_1 == pytest.approx(85.7143)
    # without segmentation each sentence would be one "word" and share nothing; by characters P = 1, R = 4/6
    assert rouge_n(["我是学生"], ["我是一个学生"], 1) == 0.0
    assert rouge_n(list("我是学生"), list("我是一个学生"), 1) == pytest.approx(0.8)
    assert scores.rouge_1 not in (0.0, 80.0)


def test_mixed_chinese_and_english_words() -> None:
    assert segment_words("我是Forge助手") == ["我", "是", "Forge", "助手"]


def test_mean_scores_average_samples() -> None:
    perfect = score_text("Paris", "Paris")
    nothing = score_text("", "Paris")
    # a one-word answer has no bigram, so its ROUGE-2 is 0 even when it is right (as in rouge-chinese)
    assert mean_scores([perfect, nothing]) == {"bleu_4": 50.0, "rouge_1": 50.0, "rouge_2": 0.0, "rouge_l": 50.0}
    assert mean_scores([]) == {"bleu_4": 0.0, "rouge_1": 0.0, "rouge_2": 0.0, "rouge_l": 0.0}
