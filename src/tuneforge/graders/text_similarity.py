"""The text_similarity metrics that can run honestly offline, each 0..1.

- fuzzy_match: the normalised Indel similarity of the two strings' characters, 2·LCS / (len a + len b) — the
  definition of rapidfuzz's `fuzz.ratio` / 100 (rapidfuzz is not a dependency; the LCS is computed bit-parallel
  on Python integers, so long answers stay fast).
- bleu: sentence BLEU-4 over words, nltk's `sentence_bleu` with smoothing method 3 (so a short answer without
  4-gram matches still gets a graded score).
- gleu: nltk's sentence GLEU over words (Google's sentence-level BLEU, 1- to 4-grams).
- rouge_1 … rouge_5, rouge_l: the F1 of shared distinct n-grams / of the longest common word subsequence, the
  definitions `tuneforge.data.text_metrics` reports for evaluations (on 0..1 here).

Words come from `text_metrics.segment_words` (jieba: Chinese cut into words, other text into whitespace words
with punctuation split off), so Chinese answers are scored on words, not on whole sentences.

"meteor" needs WordNet data downloads and "cosine" an embedding model; neither is available offline.
"""

from __future__ import annotations

from collections.abc import Callable

from tuneforge.data import text_metrics

UNAVAILABLE_METRICS: dict[str, str] = {
    "meteor": "needs the WordNet corpus, which is a separate download this host does not have",
    "cosine": "needs an embedding model, which graders do not load",
}


def fuzzy_match(prediction: str, reference: str) -> float:
    if not prediction and not reference:
        return 1.0
    return 2 * lcs_length_bits(prediction, reference) / (len(prediction) + len(reference))


def bleu(prediction: str, reference: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu  # type: ignore[import-untyped]

    hypothesis, truth = text_metrics.segment_words(prediction), text_metrics.segment_words(reference)
    if not hypothesis or not truth:
        return 0.0
    return float(sentence_bleu([truth], hypothesis, smoothing_function=SmoothingFunction().method3))


def gleu(prediction: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu  # type: ignore[import-untyped]

    hypothesis, truth = text_metrics.segment_words(prediction), text_metrics.segment_words(reference)
    if not hypothesis or not truth:
        return 0.0
    return float(sentence_gleu([truth], hypothesis))


def _rouge_n(n: int) -> Callable[[str, str], float]:
    def score(prediction: str, reference: str) -> float:
        hypothesis, truth = text_metrics.segment_words(prediction), text_metrics.segment_words(reference)
        return text_metrics.rouge_n(hypothesis, truth, n)

    return score


def rouge_l(prediction: str, reference: str) -> float:
    hypothesis, truth = text_metrics.segment_words(prediction), text_metrics.segment_words(reference)
    return text_metrics.rouge_l(hypothesis, truth)


METRICS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match,
    "bleu": bleu,
    "gleu": gleu,
    **{f"rouge_{n}": _rouge_n(n) for n in range(1, 6)},
    "rouge_l": rouge_l,
}


def lcs_length_bits(a: str, b: str) -> int:
    """Length of the longest common subsequence of two strings, by Hyyrö's bit-vector recurrence: one big-integer
    step per character of `a` instead of one Python step per cell of the len(a)·len(b) table."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    positions: dict[str, int] = {}
    for index, char in enumerate(b):
        positions[char] = positions.get(char, 0) | (1 << index)
    mask = (1 << len(b)) - 1
    row = mask  # bit i clear: the LCS gained a character at position i of b
    for char in a:
        matches = row & positions.get(char, 0)
        row = ((row + matches) | (row - matches)) & mask
    return len(b) - row.bit_count()
