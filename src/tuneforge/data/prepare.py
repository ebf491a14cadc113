"""From a training config to tokenised train / eval samples: resolve, read, mix, split, encode, pack.

Engine-side. Reads the config's fields by name (LLaMA-Factory's names) so it works with any object that has
them; missing optional fields take LLaMA-Factory's defaults.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneforge.data.mixing import mix_records
from tuneforge.data.packing import PackedSample, pack_samples
from tuneforge.data.reading import make_format, read_records
from tuneforge.data.records import (
    ChatRecord,
    DatasetError,
    DatasetProblem,
    PreferenceRecord,
    PromptRecord,
    TextRecord,
)
from tuneforge.data.sources import DatasetSource, check_ranking, resolve_dataset_sources
from tuneforge.data.templates import ChatTemplate
from tuneforge.data.tokenize import EncodedSample, count_trained, encode_chat, encode_pretrain
from tuneforge.data.tokenize_pairs import KTOSample, PairSample, PromptSample, encode_record
from tuneforge.data.tokenized_cache import load_samples, save_samples, saved_copy
from tuneforge.schemas.stages import SUPPORTED_STAGES, packs_by_default, stage_info

if TYPE_CHECKING:
    from tuneforge.schemas import TrainingConfig  # noqa: F401

Sample = EncodedSample | PackedSample | PairSample | KTOSample | PromptSample
Record = ChatRecord | TextRecord | PreferenceRecord | PromptRecord
ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class PreparedData:
    train: list[Sample]
    eval: list[Sample]
    stats: dict[str, Any] = field(default_factory=dict)


def prepare_datasets(
    cfg: Any,
    tokenizer: Any,
    template: ChatTemplate | None,
    *,
    config_dir: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> PreparedData:
    """Tokenised samples for training and evaluation, plus statistics the run reports."""
    stage = getattr(cfg, "stage", "sft") or "sft"
    if stage not in SUPPORTED_STAGES:
        raise ValueError(f"stage: data preparation for {stage!r} is not supported yet; use "
                         f"{' or '.join(SUPPORTED_STAGES)}")
    progress = on_progress or (lambda phase, done, total: None)
    tokenized_path = getattr(cfg, "tokenized_path", None)
    saved = saved_copy(tokenized_path, bool(getattr(cfg, "overwrite_cache", False)))
    if saved is not None:
        train, evaluation, stats = load_samples(saved)
        _check_saved_kind(train, stage, saved)
        progress("read tokenized copy", len(train), len(train))
        return PreparedData(train, evaluation, {**stats, "tokenized_copy": str(saved)})
    prepared = _tokenise(cfg, tokenizer, template, stage, config_dir, progress)
    if tokenized_path:
        save_samples(tokenized_path, prepared.train, prepared.eval, prepared.stats)
    return prepared


def _tokenise(cfg: Any, tokenizer: Any, template: ChatTemplate | None, stage: str, config_dir: Path | None,
              progress: ProgressCallback) -> PreparedData:
    kind = stage_info(stage).record_kind
    dataset_dir = getattr(cfg, "dataset_dir", None) or "data"
    seed = _seed(cfg)
    max_samples = getattr(cfg, "max_samples", None)

    sources = resolve_dataset_sources(getattr(cfg, "dataset", None), dataset_dir, config_dir)
    if not sources:
        raise ValueError("dataset: no training dataset given; name one (dataset_info.json key, file or folder)")
    groups = [load_source(s, kind, max_samples, seed, progress) for s in sources]
    mixed = mix_records(groups, getattr(cfg, "mix_strategy", None) or "concat",
                        parse_probs(getattr(cfg, "interleave_probs", None)), seed)

    eval_sources = resolve_dataset_sources(getattr(cfg, "eval_dataset", None), dataset_dir, config_dir)
    eval_records = [r for s in eval_sources for r in load_source(s, kind, max_samples, seed, progress)]
    eval_records += [r for s in sources if s.eval_files for r in load_files(s, s.eval_files, kind, None)]
    val_size = getattr(cfg, "val_size", None) or 0
    train_records = mixed.records
    if not eval_records and val_size:
        train_records, eval_records = split_validation(mixed.records, val_size, seed)

    encoder = _Encoder(cfg, tokenizer, template, stage, progress)
    train, train_stats = encoder.encode(train_records, "train")
    evaluation, eval_stats = encoder.encode(eval_records, "eval") if eval_records else ([], {})
    stats = {
        "n_train": len(train), "n_eval": len(evaluation),
        "datasets": _effective_counts(sources, mixed.counts),
        "val_size_ignored": bool(val_size) and bool(eval_sources or any(s.eval_files for s in sources)),
        **train_stats, **{f"eval_{key}": value for key, value in eval_stats.items()},
    }
    return PreparedData(train, evaluation, stats)


# The sample class each record kind is tokenised into (packed or not for text and chat).
_SAMPLE_KINDS: dict[str, tuple[type, ...]] = {
    "text": (EncodedSample, PackedSample), "chat": (EncodedSample, PackedSample), "preference": (PairSample,),
    "kto": (KTOSample,), "prompt": (PromptSample,),
}


def _check_saved_kind(samples: list[Any], stage: str, saved: Path) -> None:
    """A copy saved by a run of another stage (SFT samples for DPO …) would feed the trainer the wrong data."""
    wanted = _SAMPLE_KINDS[stage_info(stage).record_kind]
    if samples and not isinstance(samples[0], wanted):
        raise ValueError(f"tokenized_path: {saved} holds samples of another stage than {stage!r}; point "
                         "tokenized_path elsewhere or set overwrite_cache: true")


def _seed(cfg: Any) -> int:
    seed = getattr(cfg, "seed", None)
    return 42 if seed is None else int(seed)


def parse_probs(value: Any) -> list[float] | None:
    """LLaMA-Factory YAMLs write `interleave_probs: 0.8,0.2`; lists work too."""
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [float(item) for item in items]
    except ValueError as error:
        raise ValueError(f"interleave_probs: expected numbers like 0.8,0.2, got {value!r}") from error


def load_source(
    source: DatasetSource, kind: str, max_samples: int | None, seed: int, progress: ProgressCallback
) -> list[Record]:
    """A source's training records: first `max_samples`, then dataset_info's num_samples (sampled)."""
    check_ranking(source, kind)
    records = load_files(source, source.files, kind, max_samples)
    progress(f"read {source.name}", len(records), len(records))
    if source.num_samples is not None:
        records = resample(records, source.num_samples, seed)
    return records


def load_files(source: DatasetSource, files: Sequence[Path], kind: str, limit: int | None) -> list[Record]:
    """Records of all files; the problems of every file are gathered into one DatasetError."""
    fmt = make_format(source.formatting, source.columns, source.tags)
    records: list[Record] = []
    problems: list[DatasetProblem] = []
    total = 0
    for path in files:
        remaining = None if limit is None else limit - len(records)
        if remaining is not None and remaining <= 0:
            break
        try:
            records += read_records(path, fmt, kind, remaining)  # type: ignore[arg-type]
        except DatasetError as error:
            problems += error.problems
            total += error.total
    if problems:
        raise DatasetError(problems, total)
    return records


def resample(records: list[Record], n: int, seed: int) -> list[Record]:
    """Exactly n records: a random subset, or every record repeated plus a random rest when n is larger."""
    rng = random.Random(seed)
    whole, rest = divmod(n, len(records))
    picked = sorted(rng.sample(range(len(records)), rest))
    return records * whole + [records[index] for index in picked]


def split_validation(records: list[Record], val_size: float | int, seed: int) -> tuple[list[Record], list[Record]]:
    """Hold out val_size (a fraction below 1, or a count) of the mixed records, chosen by seed."""
    n_eval = max(1, round(len(records) * val_size)) if val_size < 1 else int(val_size)
    if n_eval >= len(records):
        raise ValueError(f"val_size: {val_size} leaves no training samples out of {len(records)}; lower it")
    held = set(random.Random(seed).sample(range(len(records)), n_eval))
    train = [record for index, record in enumerate(records) if index not in held]
    return train, [records[index] for index in sorted(held)]


def _effective_counts(sources: list[DatasetSource], counts: list[int]) -> dict[str, int]:
    result: dict[str, int] = {}
    for source, count in zip(sources, counts, strict=True):
        name = source.name if source.name not in result else f"{source.name}#{len(result)}"
        result[name] = count
    return result


class _Encoder:
    """Encodes one split with the config's options and counts what happened."""

    def __init__(self, cfg: Any, tokenizer: Any, template: ChatTemplate | None, stage: str,
                 progress: ProgressCallback) -> None:
        self.cfg, self.tokenizer, self.template, self.stage, self.progress = cfg, tokenizer, template, stage, progress
        self.cutoff_len = int(getattr(cfg, "cutoff_len", 2048) or 2048)
        self.seed = _seed(cfg)
        packing = getattr(cfg, "packing", None)
        self.neat = bool(getattr(cfg, "neat_packing", False))
        self.packing = packs_by_default(stage, packing) or self.neat

    def encode(self, records: list[Record], split: str) -> tuple[list[Sample], dict[str, Any]]:
        if stage_info(self.stage).record_kind in ("preference", "kto", "prompt"):
            return self._encode_for_trl(records, split)
        if stage_info(self.stage).record_kind == "text":
            concatenate = self.packing and not self.neat
            samples = encode_pretrain(records, self.tokenizer, self.cutoff_len, concatenate)  # type: ignore[arg-type]
            pack = self.neat
        else:
            samples = self._encode_chat(records, split)
            pack = self.packing
        kept = [sample for sample in samples if count_trained(sample.labels) > 0]
        stats = {
            "tokens": sum(len(sample.input_ids) for sample in kept),
            "trained_tokens": sum(count_trained(sample.labels) for sample in kept),
            "truncated": sum(sample.truncated for sample in samples),
            "dropped": len(samples) - len(kept),
        }
        rows: list[Sample] = list(pack_samples(kept, self.cutoff_len, self.seed)) if pack else list(kept)
        if pack:
            stats["packed_rows"] = len(rows)
        return rows, stats

    def _encode_for_trl(self, records: list[Record], split: str) -> tuple[list[Any], dict[str, Any]]:
        """Pairs, KTO samples or prompts (data.tokenize_pairs): never packed, the TRL trainers batch them."""
        if self.template is None:
            raise ValueError(f"template: stage {self.stage} needs a chat template")
        system = getattr(self.cfg, "default_system", None)
        samples = [encode_record(record, self.template, self.tokenizer, self.cutoff_len, system)  # type: ignore[arg-type]
                   for record in records]
        self.progress(f"tokenize {split}", len(records), len(records))
        # A prompt alone fills cutoff_len: no answer token would be left to learn from.
        kept = [s for s in samples if s.n_trained > 0 or isinstance(s, PromptSample)]
        stats = {"tokens": sum(s.n_tokens for s in kept), "trained_tokens": sum(s.n_trained for s in kept),
                 "truncated": sum(s.truncated for s in samples), "dropped": len(samples) - len(kept)}
        return kept, stats

    def _encode_chat(self, records: list[Record], split: str) -> list[EncodedSample]:
        if self.template is None:
            raise ValueError("template: stage sft needs a chat template")
        options = {
            "train_on_prompt": bool(getattr(self.cfg, "train_on_prompt", False)),
            "mask_history": bool(getattr(self.cfg, "mask_history", False)),
            "default_system": getattr(self.cfg, "default_system", None),
        }
        workers = int(getattr(self.cfg, "preprocessing_num_workers", None) or 1)
        task = _ChatEncoding(self.template, self.tokenizer, self.cutoff_len, options)
        if workers > 1 and len(records) >= 2 * workers:
            samples = _encode_in_processes(task, records, workers)
        else:
            samples = []
            for index, record in enumerate(records):
                samples.append(task(record))
                if index % 1000 == 999:
                    self.progress(f"tokenize {split}", index + 1, len(records))
        self.progress(f"tokenize {split}", len(records), len(records))
        return samples


@dataclass(frozen=True)
class _ChatEncoding:
    template: ChatTemplate
    tokenizer: Any
    cutoff_len: int
    options: dict[str, Any]

    def __call__(self, record: Record) -> EncodedSample:
        return encode_chat(record, self.template, self.tokenizer, self.cutoff_len, **self.options)  # type: ignore[arg-type]


_FORKED_TASK: list[Any] = []  # what the forked workers encode with: inherited at fork, never pickled


def _encode_slice(bounds: tuple[int, int]) -> list[EncodedSample]:
    task, records = _FORKED_TASK
    return [task(record) for record in records[bounds[0]:bounds[1]]]


def _encode_in_processes(task: _ChatEncoding, records: list[Record], workers: int) -> list[EncodedSample]:
    """`preprocessing_num_workers` processes, each encoding a contiguous slice (the order is kept). Forked, as
    LLaMA-Factory's datasets.map(num_proc=…) is, so the tokenizer and records are shared, not pickled; only the
    encoded samples come back."""
    import multiprocessing

    size = -(-len(records) // workers)
    slices = [(start, min(start + size, len(records))) for start in range(0, len(records), size)]
    _FORKED_TASK[:] = [task, records]
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_encode_slice, slices, chunksize=1)  # one slice a task: every process gets one
    finally:
        _FORKED_TASK.clear()
    return [sample for part in parts for sample in part]
