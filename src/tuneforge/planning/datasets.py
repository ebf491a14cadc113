"""The planner's data phase: every dataset file found (inside the allowed folders when confined), every record
valid, and what the estimate, the `auto` values and the truncation report need: sample counts and token lengths.
Torch-free: runs in the API process."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.data.formats import Record
from tuneforge.data.mixing import mix_records
from tuneforge.data.reading import make_format, read_records
from tuneforge.data.records import ChatRecord, DatasetError, TextRecord
from tuneforge.data.sources import DatasetConfigError, DatasetNotFound, check_ranking, resolve_dataset_sources
from tuneforge.data.token_counting import TokenCounter
from tuneforge.planning.paths import is_inside
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.stages import packs_by_default, stage_info

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "resources"
MAX_LISTED = 20
TEMPLATE_TOKENS_PER_TURN = 10  # role markers and separators a chat template adds around each message


@dataclass(frozen=True)
class Truncation:
    """Samples longer than cutoff_len lose their tail; packed pre-training text flows on instead."""

    samples: int
    over_cutoff: int
    tokens: int
    tokens_cut: int


@dataclass(frozen=True)
class DatasetSummary:
    num_train_samples: int
    num_eval_samples: int
    mean_sample_tokens: float
    tokens_measured_with: str  # "tokenizer" | "characters"
    files: list[str]
    samples_per_dataset: dict[str, dict[str, int]]  # name → rows, used (after mixing)
    truncation: dict[str, Truncation] = field(default_factory=dict)  # per training dataset
    cutoff_len: int | None = None  # what the truncation was measured against

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def samples_cut(self) -> int:
        return sum(t.over_cutoff for t in self.truncation.values())


def check_task_datasets(
    cfg: Any, field: str, roots: list[Path] | None, tokenizer_file: Path | None, config_dir: Path | None = None
) -> tuple[DatasetSummary | None, list[ConfigProblem]]:
    """`roots` None: not confined (`tuneforge train`). Relative names resolve next to `config_dir`, then in the
    working directory."""
    try:
        train_sources = resolve_dataset_sources(cfg.dataset, cfg.dataset_dir, config_dir)
        sources = [*train_sources, *resolve_dataset_sources(cfg.eval_dataset, cfg.dataset_dir, config_dir)]
    except (DatasetNotFound, DatasetConfigError) as exc:
        return None, [ConfigProblem(field, str(exc))]
    n_train = len(train_sources)
    problems: list[ConfigProblem] = []
    for source in sources:
        for path in [*source.files, *source.eval_files]:
            if roots is not None and not is_inside(path, roots):
                problems.append(ConfigProblem(field, f"{path} is outside the allowed folders "
                                                     f"({', '.join(map(str, roots[:-1] or roots))})"))
    kind = stage_info(cfg.stage).record_kind
    for source in sources:
        try:
            check_ranking(source, kind)
        except ValueError as exc:
            problems.append(ConfigProblem(field, str(exc)))
    if problems:
        return None, problems
    train: list[Record] = []
    evaluation: list[Record] = []
    files: list[str] = []
    per_source: list[int] = []
    for index, source in enumerate(sources):
        before = len(train)
        fmt = make_format(source.formatting, source.columns, source.tags)
        for path, bucket in [*((p, train if index < n_train else evaluation) for p in source.files),
                             *((p, evaluation) for p in source.eval_files)]:
            files.append(str(path))
            try:
                bucket += read_records(path, fmt, kind, cfg.max_samples)
            except DatasetError as exc:
                shown = exc.problems[:MAX_LISTED]
                problems += [ConfigProblem(field, str(p)) for p in shown]
                if exc.total > len(shown):
                    problems.append(ConfigProblem(field, f"{path}: {exc.total - len(shown)} more problems"))
        if index < n_train:
            per_source.append(len(train) - before)
    if problems:
        return None, problems
    lengths, how = sample_lengths(train, tokenizer_file)
    mean = sum(lengths) / len(lengths) if lengths else 0.0
    used = mixed_counts(per_source, cfg)
    counts = {s.name: {"rows": rows, "used": n} for s, rows, n in zip(train_sources, per_source, used, strict=True)}
    truncation = truncation_report([s.name for s in train_sources], per_source, lengths, cfg)
    return DatasetSummary(sum(used), len(evaluation), mean, how, files, counts, truncation, cfg.cutoff_len), []


def truncation_report(names: list[str], rows: list[int], lengths: list[int], cfg: Any) -> dict[str, Truncation]:
    """Per training dataset: how many samples exceed cutoff_len and how many tokens that cuts off."""
    flows_on = stage_info(cfg.stage).record_kind == "text" and packs_by_default(cfg.stage, cfg.packing) \
        and not cfg.neat_packing
    report, start = {}, 0
    for name, count in zip(names, rows, strict=True):
        mine = lengths[start:start + count]
        start += count
        over = [n for n in mine if n > cfg.cutoff_len] if not flows_on else []
        report[name] = Truncation(len(mine), len(over), sum(mine), sum(n - cfg.cutoff_len for n in over))
    return report


def mixed_counts(rows: list[int], cfg: Any) -> list[int]:
    """Samples each dataset contributes after mixing (the engine's own rule, on counts only)."""
    if len(rows) <= 1 or cfg.mix_strategy == "concat" or not all(rows):
        return list(rows)
    probs = list(cfg.interleave_probs) if cfg.interleave_probs else None
    seed = 42 if cfg.seed is None else int(cfg.seed)  # as the engine seeds its mixing
    result = mix_records([list(range(n)) for n in rows], cfg.mix_strategy, probs, seed=seed)
    return result.counts


def record_text(record: Record) -> str:
    if isinstance(record, TextRecord):
        return record.text
    return "\n".join([record.system or "", *(m.content for m in record.messages)])


def sample_lengths(records: list[Record], tokenizer_file: Path | None) -> tuple[list[int], str]:
    """Tokens per sample: the text's tokens plus what the chat template adds around each turn."""
    try:
        counter = TokenCounter(tokenizer_file if tokenizer_file is not None and tokenizer_file.is_file() else None)
    except ValueError:  # a tokenizer file this version cannot read: count characters instead
        counter = TokenCounter(None)
    counts = counter.count([record_text(r) for r in records]) if records else []
    turns = [len(r.messages) if isinstance(r, ChatRecord) else 0 for r in records]
    how = "tokenizer" if counter.exact else "characters"
    return [n + TEMPLATE_TOKENS_PER_TURN * t for n, t in zip(counts, turns, strict=True)], how
