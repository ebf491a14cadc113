"""A task's datasets before launch: every file found inside the allowed roots, every record valid, and the
sample count and mean length the estimate and the `auto` values need. Torch-free: runs in the API process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.data.mixing import mix_records
from tuneforge.data.reading import make_format, read_records
from tuneforge.data.records import ChatRecord, DatasetError, TextRecord
from tuneforge.data.sources import DatasetConfigError, DatasetNotFound, resolve_dataset_sources
from tuneforge.schemas import ConfigProblem
from tuneforge.service.paths import is_inside

CHARS_PER_TOKEN = 3.6  # when no tokenizer.json is at hand: a fair average for English text with BPE tokenizers
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "resources"
MAX_LISTED = 20


@dataclass(frozen=True)
class DatasetSummary:
    num_train_samples: int
    num_eval_samples: int
    mean_sample_tokens: float
    tokens_measured_with: str  # "tokenizer" | "characters"
    files: list[str]
    samples_per_dataset: dict[str, dict[str, int]]  # name → rows, used (after mixing)


def check_task_datasets(
    cfg: Any, field: str, roots: list[Path], tokenizer_file: Path | None
) -> tuple[DatasetSummary | None, list[ConfigProblem]]:
    try:
        train_sources = resolve_dataset_sources(cfg.dataset, cfg.dataset_dir, None)
        sources = [*train_sources, *resolve_dataset_sources(cfg.eval_dataset, cfg.dataset_dir, None)]
    except (DatasetNotFound, DatasetConfigError) as exc:
        return None, [ConfigProblem(field, str(exc))]
    n_train = len(train_sources)
    problems: list[ConfigProblem] = []
    allowed = [*roots, PACKAGE_DATA]
    for source in sources:
        for path in [*source.files, *source.eval_files]:
            if not is_inside(path, allowed):
                problems.append(ConfigProblem(field, f"{path} is outside the allowed folders "
                                                     f"({', '.join(map(str, roots))})"))
    if problems:
        return None, problems
    kind = "text" if cfg.stage == "pt" else "chat"
    train, evaluation, files = [], [], []
    per_source: list[int] = []
    for index, source in enumerate(sources):
        before = len(train)
        fmt = make_format(source.formatting, source.columns, source.tags)
        for path, bucket in [*((p, train if index < n_train else evaluation) for p in source.files),
                             *((p, evaluation) for p in source.eval_files)]:
            files.append(str(path))
            try:
                bucket += read_records(path, fmt, kind, cfg.max_samples)  # type: ignore[arg-type]
            except DatasetError as exc:
                shown = exc.problems[:MAX_LISTED]
                problems += [ConfigProblem(field, str(p)) for p in shown]
                if exc.total > len(shown):
                    problems.append(ConfigProblem(field, f"{path}: {exc.total - len(shown)} more problems"))
        if index < n_train:
            per_source.append(len(train) - before)
    if problems:
        return None, problems
    mean, how = mean_tokens(train, tokenizer_file)
    used = mixed_counts(per_source, cfg)
    counts = {s.name: {"rows": rows, "used": n} for s, rows, n in zip(train_sources, per_source, used, strict=True)}
    return DatasetSummary(sum(used), len(evaluation), mean, how, files, counts), []


def mixed_counts(rows: list[int], cfg: Any) -> list[int]:
    """Samples each dataset contributes after mixing (the engine's own rule, on counts only)."""
    if len(rows) <= 1 or cfg.mix_strategy == "concat" or not all(rows):
        return list(rows)
    probs = list(cfg.interleave_probs) if cfg.interleave_probs else None
    seed = 42 if cfg.seed is None else int(cfg.seed)  # as the engine seeds its mixing
    result = mix_records([list(range(n)) for n in rows], cfg.mix_strategy, probs, seed=seed)
    return result.counts


def record_text(record: ChatRecord | TextRecord) -> str:
    if isinstance(record, TextRecord):
        return record.text
    return "\n".join([record.system or "", *(m.content for m in record.messages)])


def mean_tokens(records: list, tokenizer_file: Path | None, sample: int = 256) -> tuple[float, str]:
    """Mean tokens per sample over the first `sample` records (template tokens add ~10 per turn)."""
    texts = [record_text(r) for r in records[:sample]]
    if not texts:
        return 0.0, "characters"
    turns = sum(len(r.messages) if isinstance(r, ChatRecord) else 0 for r in records[:sample]) / len(texts)
    if tokenizer_file is not None and tokenizer_file.is_file():
        try:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            counts = [len(e.ids) for e in tokenizer.encode_batch(texts)]
            return sum(counts) / len(counts) + 10 * turns, "tokenizer"
        except Exception:  # a tokenizer file this version cannot read: fall back to characters
            pass
    return sum(len(t) for t in texts) / len(texts) / CHARS_PER_TOKEN + 10 * turns, "characters"
