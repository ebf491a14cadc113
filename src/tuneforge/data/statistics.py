"""Dataset statistics in one streamed pass: rows per split, token lengths, samples over cutoff_len, duplicates.

Torch-free: tokens are counted with the Rust `tokenizers` library from a model's tokenizer.json (see
token_counting; batches of ~1000 records, counted in a worker thread while the next batch is read), or
estimated as characters / 3.6 when no tokenizer is given. Lengths count the message text (system, prompts,
answers, tools) without the chat template's own tokens, which add a few per message.
"""

from __future__ import annotations

import math
import re
import string
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from tuneforge.data.formats import Record
from tuneforge.data.records import KTORecord, PreferenceRecord, TextRecord
from tuneforge.data.token_counting import TokenCounter
from tuneforge.data.validation import DatasetScan, Progress, ScannedRow

BATCH_RECORDS = 1000
MAX_EXAMPLES = 5
_NON_WORD = re.compile(r"[\W_]+")
# The ASCII fast path of near_key: A-Z lowered, every other byte that is not a letter or digit deleted.
_ASCII_LOWER = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())
_ASCII_NON_WORD = bytes(code for code in range(128) if not chr(code).isalnum())


# ---------------------------------------------------------------- results (JSON-ready; the API returns them)


class LengthSummary(BaseModel):
    min: int
    p50: int = Field(description="median, nearest-rank")
    p95: int = Field(description="95th percentile, nearest-rank")
    max: int
    mean: float


class Histogram(BaseModel):
    edges: list[int] = Field(description="bin i counts lengths in [edges[i], edges[i+1])")
    counts: list[int]


class DuplicateExample(BaseModel):
    location: str = Field(description="file:line of the repeat")
    same_as: str = Field(description="file:line of the first occurrence")


class SplitStats(BaseModel):
    split: str
    rows: int = Field(description="valid records")
    rows_invalid: int = Field(description="records or lines with problems (see validation), not measured")
    tokens: LengthSummary | None = Field(description="per-sample token lengths; None when there is no valid row")
    total_tokens: int
    over_cutoff: int | None = Field(description="samples longer than cutoff_len (truncated in training)")
    exact_duplicates: int = Field(description="records identical to an earlier one (any split)")
    near_duplicates: int = Field(description="records equal to an earlier one once case, whitespace and "
                                             "punctuation are dropped, not counting exact duplicates")
    empty_responses: int = Field(description="records whose answer to learn is empty (they are invalid)")
    exact_duplicate_examples: list[DuplicateExample]
    near_duplicate_examples: list[DuplicateExample]
    histogram: Histogram | None


class DatasetStats(BaseModel):
    purpose: str
    formatting: str | None
    columns: dict[str, str]
    tags: dict[str, str]
    splits: dict[str, SplitStats]
    overall: SplitStats = Field(description="all splits together (split name 'all')")
    tokens_measured_with: str = Field(description="the tokenizer used, or the character estimate")
    cutoff_len: int | None


# ---------------------------------------------------------------- token counting


class _LengthPipeline:
    """Batches the texts of records and counts their tokens in a worker thread, one batch ahead."""

    def __init__(self, counter: TokenCounter, lengths: list[array]) -> None:
        self.counter, self.lengths = counter, lengths
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-count")
        self.pending: list[Future] = []
        self.texts: list[str] = []
        self.records: list[tuple[int, int]] = []  # (split index, how many texts)

    def add(self, split_index: int, texts: list[str]) -> None:
        self.texts += texts
        self.records.append((split_index, len(texts)))
        if len(self.records) >= BATCH_RECORDS:
            self._submit()

    def finish(self) -> None:
        self._submit()
        while self.pending:
            self._collect()
        self.pool.shutdown()

    def _submit(self) -> None:
        if not self.records:
            return
        texts, records = self.texts, self.records
        self.texts, self.records = [], []
        self.pending.append(self.pool.submit(self._measure, texts, records))
        while len(self.pending) > 1:  # keep memory flat: at most one batch waits while one is encoded
            self._collect()

    def _measure(self, texts: list[str], records: list[tuple[int, int]]) -> list[tuple[int, int]]:
        counts, at, out = self.counter.count(texts), 0, []
        for split_index, pieces in records:
            first, rest = counts[at], counts[at + 1: at + pieces]
            out.append((split_index, first + max(rest, default=0)))  # preference: prompt + longer answer
            at += pieces
        return out

    def _collect(self) -> None:
        for split_index, length in self.pending.pop(0).result():
            self.lengths[split_index].append(length)


def record_texts(record: Record) -> list[str]:
    """The text a sample is measured by: one text, or [prompt, chosen, rejected] for preference records."""
    if isinstance(record, TextRecord):
        return [record.text]
    head = [part for part in (record.system, record.tools) if part]
    prompt = "\n".join([*head, *(message.content for message in record.messages)])
    if isinstance(record, PreferenceRecord):
        return [prompt, record.chosen.content, record.rejected.content]
    return [prompt]


# ---------------------------------------------------------------- duplicates


def canonical_text(record: Record) -> str:
    """Everything that makes a record what it is, in one string (two records are duplicates when equal)."""
    if isinstance(record, TextRecord):
        return record.text
    parts = [record.system or "", record.tools or ""]
    parts += [f"{message.role}\x01{message.content}" for message in record.messages]
    if isinstance(record, PreferenceRecord):
        parts += [f"chosen\x01{record.chosen.content}", f"rejected\x01{record.rejected.content}"]
    if isinstance(record, KTORecord):
        parts.append(f"label\x01{record.label}")
    return "\x00".join(parts)


def near_key(text: str) -> bytes:
    """Lowercased with punctuation and whitespace dropped: what near-exact duplicates have in common."""
    if text.isascii():  # bytes.translate is ~10x faster than the regex, with the same result on ASCII
        return text.encode().translate(_ASCII_LOWER, _ASCII_NON_WORD)
    return _NON_WORD.sub("", text.lower()).encode()


@dataclass
class _SplitTally:
    name: str
    rows: int = 0
    rows_invalid: int = 0
    empty_responses: int = 0
    exact: list[tuple[int, int]] = field(default_factory=list)  # (repeat, first) packed locations
    near: list[tuple[int, int]] = field(default_factory=list)
    exact_count: int = 0
    near_count: int = 0


class _Duplicates:
    """First location of every record by exact and near key; the keys are 64-bit hashes, not the texts."""

    def __init__(self) -> None:
        self.exact: dict[int, int] = {}
        self.near: dict[int, int] = {}

    def check(self, tally: _SplitTally, record: Record, location: int) -> None:
        text = canonical_text(record)
        first = self.exact.setdefault(hash(text), location)
        if first != location:
            tally.exact_count += 1
            if len(tally.exact) < MAX_EXAMPLES:
                tally.exact.append((location, first))
            return
        first = self.near.setdefault(hash(near_key(text)), location)
        if first != location:
            tally.near_count += 1
            if len(tally.near) < MAX_EXAMPLES:
                tally.near.append((location, first))


# ---------------------------------------------------------------- the pass


def dataset_statistics(
    files_by_split: dict[str, list[Path]],
    *,
    formatting: str | None,
    purpose: str,
    columns: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    tokenizer_file: Path | None = None,
    cutoff_len: int | None = None,
    bins: int = 20,
    progress: Progress | None = None,
) -> DatasetStats:
    """Statistics of a dataset's splits (e.g. {"train": [...], "valid": [...]}) for `purpose`.

    Invalid rows are counted, not measured. ValueError (naming the field) for arguments that cannot work.
    """
    if cutoff_len is not None and cutoff_len < 1:
        raise ValueError(f"cutoff_len: expected a positive number of tokens, got {cutoff_len}")
    if bins < 1:
        raise ValueError(f"bins: expected at least 1, got {bins}")
    split_names = list(files_by_split)
    files = [path for name in split_names for path in files_by_split[name]]
    split_of = [index for index, name in enumerate(split_names) for _ in files_by_split[name]]
    scan = DatasetScan(files, formatting=formatting, purpose=purpose, columns=columns, tags=tags,
                       progress=progress)
    counter = TokenCounter(tokenizer_file)
    tallies = [_SplitTally(name) for name in split_names]
    lengths = [array("I") for _ in split_names]  # 4 bytes a sample: the only thing kept per record
    pipeline = _LengthPipeline(counter, lengths)
    duplicates = _Duplicates()
    try:
        for row in scan.rows():
            _count_row(row, tallies[split_of[row.file_index]], split_of[row.file_index], pipeline, duplicates)
    finally:
        pipeline.finish()
    where = _Locations(scan.names)
    splits = {tally.name: _split_stats(tally, lengths[i], cutoff_len, bins, where)
              for i, tally in enumerate(tallies)}
    formatting_used, columns_used, tags_used = scan.mapping()
    return DatasetStats(
        purpose=purpose, formatting=formatting_used, columns=columns_used, tags=tags_used, splits=splits,
        overall=_overall(tallies, lengths, cutoff_len, bins, where), tokens_measured_with=counter.described,
        cutoff_len=cutoff_len,
    )


def _count_row(
    row: ScannedRow, tally: _SplitTally, split_index: int, pipeline: _LengthPipeline, duplicates: _Duplicates
) -> None:
    if not row.line:  # a problem of the whole file, not a row
        return
    if row.record is None:
        tally.rows_invalid += 1
        tally.empty_responses += any(problem.code == "empty_response" for problem in row.problems)
        return
    tally.rows += 1
    duplicates.check(tally, row.record, row.file_index << 32 | row.line)
    pipeline.add(split_index, record_texts(row.record))


class _Locations:
    def __init__(self, names: Sequence[str]) -> None:
        self.names = names

    def __call__(self, packed: int) -> str:
        return f"{self.names[packed >> 32]}:{packed & 0xFFFFFFFF}"

    def examples(self, pairs: list[tuple[int, int]]) -> list[DuplicateExample]:
        return [DuplicateExample(location=self(repeat), same_as=self(first)) for repeat, first in pairs]


def _split_stats(
    tally: _SplitTally, lengths: array, cutoff_len: int | None, bins: int, where: _Locations
) -> SplitStats:
    ordered = sorted(lengths)
    return SplitStats(
        split=tally.name, rows=tally.rows, rows_invalid=tally.rows_invalid, tokens=summarize(ordered),
        total_tokens=sum(ordered), over_cutoff=_over(ordered, cutoff_len),
        exact_duplicates=tally.exact_count, near_duplicates=tally.near_count, empty_responses=tally.empty_responses,
        exact_duplicate_examples=where.examples(tally.exact), near_duplicate_examples=where.examples(tally.near),
        histogram=histogram(ordered, bins),
    )


def _overall(
    tallies: list[_SplitTally], lengths: list[array], cutoff_len: int | None, bins: int, where: _Locations
) -> SplitStats:
    total = _SplitTally("all")
    for tally in tallies:
        total.rows += tally.rows
        total.rows_invalid += tally.rows_invalid
        total.empty_responses += tally.empty_responses
        total.exact_count += tally.exact_count
        total.near_count += tally.near_count
        total.exact += tally.exact[: MAX_EXAMPLES - len(total.exact)]
        total.near += tally.near[: MAX_EXAMPLES - len(total.near)]
    joined = array("I")
    for part in lengths:
        joined.extend(part)
    return _split_stats(total, joined, cutoff_len, bins, where)


def _over(ordered: Sequence[int], cutoff_len: int | None) -> int | None:
    if cutoff_len is None:
        return None
    return len(ordered) - bisect_right(ordered, cutoff_len)


def summarize(ordered: Sequence[int]) -> LengthSummary | None:
    """min / p50 / p95 / max (nearest-rank percentiles) and mean of sorted lengths."""
    if not ordered:
        return None

    def rank(percent: float) -> int:
        return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]

    return LengthSummary(min=ordered[0], p50=rank(50), p95=rank(95), max=ordered[-1],
                         mean=round(sum(ordered) / len(ordered), 2))


def histogram(ordered: Sequence[int], bins: int) -> Histogram | None:
    """Equal-width integer bins from the shortest to the longest sample (fewer bins when the range is small)."""
    if not ordered:
        return None
    low, high = ordered[0], ordered[-1]
    width = max(1, math.ceil((high - low + 1) / bins))
    count = math.ceil((high - low + 1) / width)
    counts = [0] * count
    for length in ordered:
        counts[(length - low) // width] += 1
    return Histogram(edges=[low + width * i for i in range(count + 1)], counts=counts)

