"""Dataset validation and statistics on a 100,000-record (~100 MB) alpaca jsonl: seconds and peak memory.

Writes the file to a temporary directory (answers of ~1 KB, a few bad lines, exact and near duplicates), then
times `validate_dataset` and `dataset_statistics` (token lengths with the bundled SmolLM2 tokenizer.json when it
is in the model cache, else the tests' tiny tokenizer). Peak RSS is printed before and after each step: it
stays far below the file's size because both stream it; statistics keep only ~0.2 KB a record (the hashes that
find duplicates, a length) plus the tokenizer. Prints one table and one JSON line. Bar (issue 5): < 15 s total.

    .venv/bin/python bench/dataset_bench.py [--records 100000] [--answer-bytes 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from tuneforge.data.statistics import dataset_statistics
from tuneforge.data.validation import validate_dataset

WORD_TEXT = (
    "the model learns from data and each answer should be clear short correct kind helpful about time people "
    "year way day thing man world life hand part child eye woman place work week case point government company "
    "number group problem fact be have do say get make go know take see come think look want give use find tell "
    "ask seem feel try leave call good new first last long great little own other old right big high different "
    "small large next early young important few public bad same able to of in for on with at by from up into "
    "over after beneath under above training tuning learning rate batch token loss value system question"
)
WORDS = WORD_TEXT.split()
BUNDLED_TOKENIZER = Path.home() / ".tuneforge" / "models" / "smollm2-135m-instruct" / "tokenizer.json"
BAD_LINES = {  # line -> what is wrong (known, so the report can be checked)
    **{n: "invalid_json" for n in (17, 5_003, 50_001)},
    **{n: "missing_field" for n in (101, 60_000)},
    **{n: "empty_response" for n in (202, 70_707)},
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def sentences(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        words = rng.choices(WORDS, k=rng.randint(8, 20))
        out.append(" ".join(words).capitalize() + rng.choice(".!?") + (f" {rng.randint(0, 9999)}" * rng.randint(0, 1)))
    return out


def write_dataset(path: Path, records: int, answer_bytes: int, seed: int = 0) -> dict[str, int]:
    """Alpaca lines; every 997th repeats an earlier line, every 1499th repeats one with its answer upper-cased."""
    rng = random.Random(seed)
    pool = sentences(rng, 5000)
    per_answer = max(1, answer_bytes // 85)
    kept: list[str] = []
    exact = near = 0
    with path.open("w", encoding="utf-8") as handle:
        for line in range(1, records + 1):
            if line in BAD_LINES:
                handle.write(_bad_line(BAD_LINES[line]) + "\n")
                continue
            if line % 997 == 0 and kept:
                handle.write(kept[exact % len(kept)] + "\n")
                exact += 1
                continue
            row = {"instruction": " ".join(rng.choices(pool, k=2)), "input": rng.choice(("", rng.choice(pool))),
                   "output": " ".join(rng.choices(pool, k=per_answer))}
            if line % 1499 == 0 and len(kept) > near:  # a different original each time, so no two are equal
                row = json.loads(kept[-1 - near])
                row["output"] = row["output"].upper()
                near += 1
            text = json.dumps(row, ensure_ascii=False)
            if len(kept) < 200 and line % 7 == 0:
                kept.append(text)
            handle.write(text + "\n")
    return {"exact": exact, "near": near}


def _bad_line(kind: str) -> str:
    if kind == "invalid_json":
        return '{"instruction": "cut off here", "output": "never clo'
    if kind == "missing_field":
        return json.dumps({"instruction": "no answer"})
    return json.dumps({"instruction": "empty answer", "output": "  "})


def fallback_tokenizer(directory: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.fixtures
    from tests.fixtures.tiny import build_tokenizer

    build_tokenizer(directory)
    return directory / "tokenizer.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--answer-bytes", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        started = time.perf_counter()
        planted = write_dataset(data, args.records, args.answer_bytes)
        generate_s = time.perf_counter() - started
        tokenizer = BUNDLED_TOKENIZER if BUNDLED_TOKENIZER.is_file() else fallback_tokenizer(Path(tmp) / "tok")
        rss_start = peak_rss_mb()

        started = time.perf_counter()
        report = validate_dataset([data], formatting=None, purpose="sft")
        validate_s = time.perf_counter() - started
        rss_validate = peak_rss_mb()

        started = time.perf_counter()
        stats = dataset_statistics({"train": [data]}, formatting=None, purpose="sft", tokenizer_file=tokenizer,
                                   cutoff_len=256)
        stats_s = time.perf_counter() - started
        rss_stats = peak_rss_mb()
        size_mb = data.stat().st_size / 1e6

    found = {(p.line, p.code) for p in report.problems}
    expected = {(line, code) for line, code in BAD_LINES.items() if line <= args.records}
    train, tokens = stats.splits["train"], stats.splits["train"].tokens
    result = {
        "records": args.records, "file_mb": round(size_mb, 1), "generate_s": round(generate_s, 2),
        "validate_s": round(validate_s, 2), "statistics_s": round(stats_s, 2),
        "total_s": round(validate_s + stats_s, 2), "validate_mb_per_s": round(size_mb / validate_s, 1),
        "peak_rss_mb_before": round(rss_start, 1), "peak_rss_mb_after_validate": round(rss_validate, 1),
        "peak_rss_mb_after_statistics": round(rss_stats, 1), "rows_ok": report.rows_ok,
        "problems": report.problem_count, "problems_as_planted": found == expected,
        "exact_duplicates": train.exact_duplicates, "near_duplicates": train.near_duplicates,
        "planted_duplicates": planted, "tokens": tokens.model_dump() if tokens else None,
        "over_cutoff_256": train.over_cutoff, "tokenizer": stats.tokens_measured_with,
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "bar_s": 15,
    }
    print_table(result)
    print(json.dumps(result))


def print_table(result: dict) -> None:
    rows = [
        ("file", f"{result['records']:,} records, {result['file_mb']} MB (generated in {result['generate_s']} s)"),
        ("validate_dataset", f"{result['validate_s']} s ({result['validate_mb_per_s']} MB/s), "
                             f"{result['rows_ok']:,} rows ok, {result['problems']} problems "
                             f"(as planted: {result['problems_as_planted']})"),
        ("dataset_statistics", f"{result['statistics_s']} s, duplicates {result['exact_duplicates']} exact / "
                               f"{result['near_duplicates']} near (planted {result['planted_duplicates']})"),
        ("total", f"{result['total_s']} s (bar < {result['bar_s']} s)"),
        ("token lengths", json.dumps(result["tokens"]) + f", over 256: {result['over_cutoff_256']}"),
        ("peak RSS MB", f"before {result['peak_rss_mb_before']}, after validate "
                        f"{result['peak_rss_mb_after_validate']}, after statistics "
                        f"{result['peak_rss_mb_after_statistics']}"),
        ("machine", f"{result['cpus']} CPUs, load average {result['load_avg_1m']}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
