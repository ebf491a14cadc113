"""Run a LLaMA-Factory training command and report what a side-by-side comparison needs.

Usage: measure_run.py OUTPUT_DIR -- COMMAND...
Runs COMMAND under `/usr/bin/time -v` (kernel-reported peak RSS), watches OUTPUT_DIR/trainer_log.jsonl to time the
first logged step from process start, then reads LLaMA-Factory's result files and prints a table and one JSON line.
Standard library only, so any Python can run it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

TIME_BIN = "/usr/bin/time"
MODEL_READY_MARK = "trainable params"  # LLaMA-Factory logs this once the model and adapter are built


class Watch:
    """Wall-clock seconds since process start at which milestones were first seen."""

    def __init__(self, output_dir: Path) -> None:
        self.start = time.monotonic()
        self.log_file = output_dir / "trainer_log.jsonl"
        self.first_step_s: float | None = None
        self.model_ready_s: float | None = None
        self.done = threading.Event()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 1)

    def poll_first_step(self) -> None:
        # LLaMA-Factory appends one line per logged step; the first one means step 1 finished (logging_steps=1).
        while not self.done.is_set() and self.first_step_s is None:
            if self.log_file.is_file() and self.log_file.stat().st_size > 0:
                self.first_step_s = self.elapsed()
            time.sleep(0.2)

    def see_line(self, line: str) -> None:
        if self.model_ready_s is None and MODEL_READY_MARK in line:
            self.model_ready_s = self.elapsed()


def run(command: list[str], output_dir: Path) -> tuple[int, Watch, Path]:
    time_file = output_dir.parent / "time-v.txt"
    log_path = output_dir.parent / "train.log"
    watch = Watch(output_dir)
    poller = threading.Thread(target=watch.poll_first_step, daemon=True)
    poller.start()
    proc = subprocess.Popen(
        [TIME_BIN, "-v", "-o", str(time_file), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    with log_path.open("w", encoding="utf-8") as log:
        for line in proc.stdout:
            watch.see_line(line)
            log.write(line)
            sys.stderr.write(line)
    code = proc.wait()
    watch.done.set()
    return code, watch, time_file


def peak_rss_gb(time_file: Path) -> float | None:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_file.read_text(encoding="utf-8"))
    return round(int(match.group(1)) * 1024 / 1e9, 2) if match else None


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_log(output_dir: Path) -> list[dict]:
    path = output_dir / "trainer_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def summarise(output_dir: Path, watch: Watch, time_file: Path, wall_s: float) -> dict:
    results = read_json(output_dir / "all_results.json") or read_json(output_dir / "train_results.json")
    state = read_json(output_dir / "trainer_state.json")
    log = read_log(output_dir)
    runtime = results.get("train_runtime")
    seen = results.get("num_input_tokens_seen")  # non-padding count: include_num_input_tokens_seen=non_padding
    steps = state.get("global_step") or (log[-1].get("current_steps") if log else None)
    return {
        "tool": "llamafactory",
        "useful_tokens_per_s": round(seen / runtime, 1) if seen and runtime else None,
        "train_runtime_s": rounded(runtime, 1),
        "peak_rss_gb": peak_rss_gb(time_file),
        "steps": steps,
        "first_step_s": watch.first_step_s,
        "s_per_step": round(runtime / steps, 2) if runtime and steps else None,
        "useful_tokens": seen,
        "lf_effective_tokens_per_s": rounded(results.get("effective_tokens_per_sec"), 1),
        "model_ready_s": watch.model_ready_s,
        "train_loss": rounded(results.get("train_loss"), 4),
        "eval_loss": rounded(results.get("eval_loss"), 4),
        "wall_s": round(wall_s, 1),
    }


TABLE_ROWS = [
    ("useful (non-pad input) tokens/s", "useful_tokens_per_s"),
    ("LF effective_tokens_per_sec (dataset-average estimate)", "lf_effective_tokens_per_s"),
    ("useful tokens trained", "useful_tokens"),
    ("steps", "steps"),
    ("train runtime s", "train_runtime_s"),
    ("s / step", "s_per_step"),
    ("peak RSS GB", "peak_rss_gb"),
    ("process start -> model ready s", "model_ready_s"),
    ("process start -> first step done s", "first_step_s"),
    ("final train loss", "train_loss"),
    ("eval loss", "eval_loss"),
    ("whole process wall s", "wall_s"),
]


def print_report(summary: dict) -> None:
    width = max(len(label) for label, _ in TABLE_ROWS)
    print(f"| {'LLaMA-Factory 0.9.5':<{width}} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for label, key in TABLE_ROWS:
        value = summary.get(key)
        print(f"| {label:<{width}} | {'—' if value is None else value} |")
    keys = ["tool", "useful_tokens_per_s", "train_runtime_s", "peak_rss_gb", "steps", "first_step_s"]
    print(json.dumps({key: summary[key] for key in keys}))


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: measure_run.py OUTPUT_DIR -- COMMAND...")
    output_dir = Path(argv[0])
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    code, watch, time_file = run(argv[2:], output_dir)
    wall_s = time.monotonic() - watch.start
    if code != 0:
        print(f"[peer] LLaMA-Factory exited with status {code}; see {output_dir.parent / 'train.log'}", file=sys.stderr)
        return code
    print_report(summarise(output_dir, watch, time_file, wall_s))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
