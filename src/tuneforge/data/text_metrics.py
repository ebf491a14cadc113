"""BLEU-4 and ROUGE-1/2/L of a generated answer against its reference, on 0-100, as LLaMA-Factory reports them
(`predict_bleu-4`, `predict_rouge-1`, `predict_rouge-2`, `predict_rouge-l`), so scores can be compared with runs
made there.

- ROUGE works on words: the text is segmented with jieba, which cuts Chinese into words and leaves other text as
  its whitespace-separated words with punctuation split off. ROUGE-N is the F1 of the *distinct* n-grams both texts
  share and ROUGE-L the F1 of the longest common subsequence of words, the definitions of `rouge-chinese`, the
  package LLaMA-Factory scores with.
- BLEU-4 works on characters, as LLaMA-Factory's does (nltk's sentence_bleu over `list(text)` with smoothing
  method 3, so a short answer without 4-gram matches still gets a graded score).

Pure Python (jieba, nltk): the service can score without torch, and tests run without a model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

METRIC_NAMES = ("bleu_4", "rouge_1", "rouge_2", "rouge_l")
DECIMALS = 4  # LLaMA-Factory rounds each sample's score to 4 decimals before averaging


@dataclass(frozen=True)
class TextScores:
    """One prediction's scores, each 0-100."""

    bleu_4: float
    rouge_1: float
    rouge_2: float
    rouge_l: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def score_text(prediction: str, reference: str) -> TextScores:
    """BLEU-4 (characters) and ROUGE-1/2/L (jieba words) of `prediction` against `reference`."""
    hypothesis, truth = segment_words(prediction), segment_words(reference)
    if hypothesis and truth:
        rouge = (rouge_n(hypothesis, truth, 1), rouge_n(hypothesis, truth, 2), rouge_l(hypothesis, truth))
    else:  # nothing to compare: 0, as LLaMA-Factory scores an empty answer
        rouge = (0.0, 0.0, 0.0)
    return TextScores(*(round(value * 100, DECIMALS) for value in (bleu_4(prediction, reference), *rouge)))


def mean_scores(scores: Iterable[TextScores]) -> dict[str, float]:
    """Corpus scores: the mean of the per-sample scores (LLaMA-Factory's way), each 0-100."""
    items = list(scores)
    if not items:
        return dict.fromkeys(METRIC_NAMES, 0.0)
    return {name: round(sum(getattr(s, name) for s in items) / len(items), DECIMALS) for name in METRIC_NAMES}


def segment_words(text: str) -> list[str]:
    """Words for ROUGE: jieba's segmentation with whitespace dropped (jieba yields spaces as tokens)."""
    return [word for token in _jieba().cut(text) for word in token.split()]


def rouge_n(hypothesis: Sequence[str], reference: Sequence[str], n: int) -> float:
    """F1 (0-1) of the distinct n-grams the two word lists share."""
    hyp, ref = _ngrams(hypothesis, n), _ngrams(reference, n)
    return _f1(len(hyp & ref), len(hyp), len(ref))


def rouge_l(hypothesis: Sequence[str], reference: Sequence[str]) -> float:
    """F1 (0-1) of the longest common subsequence of the two word lists."""
    return _f1(lcs_length(hypothesis, reference), len(hypothesis), len(reference))


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence; two rows of the table, so memory stays O(len(b))."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if item == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def bleu_4(prediction: str, reference: str) -> float:
    """Sentence BLEU-4 (0-1) over characters with smoothing method 3 (NIST geometric), via nltk."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if not prediction or not reference:
        return 0.0
    return float(sentence_bleu([list(reference)], list(prediction), smoothing_function=SmoothingFunction().method3))


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _f1(overlap: int, hyp_count: int, ref_count: int) -> float:
    if overlap == 0 or hyp_count == 0 or ref_count == 0:
        return 0.0
    precision, recall = overlap / hyp_count, overlap / ref_count
    return 2 * precision * recall / (precision + recall)


def load_segmenter() -> None:
    """Load jieba's dictionary now (about a second, cached on disk after the first time) rather than on first use."""
    _jieba().initialize()


@cache
def _jieba() -> Any:
    """jieba, imported once and quiet: it logs its dictionary loading at DEBUG to stderr by default."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba
