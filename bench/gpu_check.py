"""GPU device check: tuneforge's worker against a plain Trainer + peft baseline on Llama-3.2-1B / 3.1-8B shapes.

Random weights (no downloads): the models are built from Llama configs, saved as bf16 safetensors with a byte-level
BPE tokenizer trained at run time, and loaded by path. Data: synthetic alpaca SFT samples whose lengths follow a
log-normal (median ~400 tokens, clipped to cutoff_len 2048; fixed seed), the prompt 20–60% of each. Every row is
its own process, so its peak memory is its own (torch.cuda.max_memory_reserved + the CUDA context).

Columns: tokens/s (non-pad input tokens per second, after the warm-up steps), MFU (model FLOPs: 6·N per token for
full fine-tuning, 4·N + 6·N_lora for LoRA / QLoRA, + causal attention; N without the input embeddings when they are
untied, since a lookup is no matmul; recomputation is not counted), peak memory, tuneforge's estimate of it
(planning.estimate.estimate_training, as `tuneforge train --check` computes it) and their ratio. The planner models
the worker only, so baseline rows have no estimate. Bars: worker / baseline tokens/s on 1B LoRA ≥ 2, MFU of the
worker's 8B LoRA ≥ 40%, QLoRA 8B peak / LoRA 8B peak ≤ 40%, every estimate within 20% of the measured peak.

Time on one H200 (expected ~6 min; bench/gpu_check.sh must end within 8): building both models ~1 min; each row
is capped (1B: 20 steps and 100 s, 8B: 12 steps and 160 s) and no row starts once --budget-s (450 s) is spent;
rows run in the order the bars need them. Batches: 8 samples × 4 accumulation steps ≈ 17k tokens per step.

    bash bench/gpu_check.sh                         # on the GPU host; writes $OUT/gpu_check.json and .log
    python bench/gpu_check.py --smoke --out /tmp/x  # CPU: tiny Llamas, cutoff 256, 3 steps, fp32, no GPU-only rows
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_check_report import add_figures, report
from gpu_check_rows import corpus_words, throughput

REPO = Path(__file__).resolve().parent.parent
ROWS_SCRIPT = Path(__file__).resolve().parent / "gpu_check_rows.py"
GIB = 1024**3
LENGTH_SIGMA = 0.8  # log-normal spread of sample lengths: mean ≈ 1.35 × median, ~1% over 2048 at median 400
TEMPLATE_TOKENS = 12  # ChatML markers and role names around one user / assistant exchange
SHM = Path("/dev/shm")

LLAMA_1B = {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
            "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True, "rope_theta": 500000.0,
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-5}
LLAMA_8B = {**LLAMA_1B, "hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 14336,
            "tie_word_embeddings": False}
# vocab_size 0: the tokenizer's own size (the smoke models stay tiny).
TINY_1B = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "intermediate_size": 128, "vocab_size": 0, "tie_word_embeddings": True, "max_position_embeddings": 512}
TINY_8B = {**TINY_1B, "hidden_size": 96, "intermediate_size": 192, "tie_word_embeddings": False}


@dataclass(frozen=True)
class Profile:
    models: dict[str, dict[str, Any]]
    cutoff_len: int
    median_tokens: int
    batch_size: int
    grad_accum: int
    max_steps: dict[str, int]
    warmup_steps: int  # excluded from tokens/s; also the worker's logging interval (its progress events)
    bf16: bool
    row_cap_s: dict[str, int]
    min_start_s: dict[str, int]  # a row needs at least this much of the budget left to start
    build_cap_s: int
    needs_cuda: bool

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def samples(self) -> int:
        return max(int(1.1 * max(self.max_steps.values()) * self.batch_size * self.grad_accum) + 1, 32)


GPU = Profile({"1B": LLAMA_1B, "8B": LLAMA_8B}, 2048, 400, 8, 4, {"1B": 20, "8B": 12}, 5, True,
              {"1B": 100, "8B": 160}, {"1B": 45, "8B": 90}, 240, True)
SMOKE = Profile({"1B": TINY_1B, "8B": TINY_8B}, 256, 60, 2, 1, {"1B": 3, "8B": 3}, 1, False,
                {"1B": 120, "8B": 120}, {"1B": 0, "8B": 0}, 120, False)


FULL = ("full", "fsdp", "zero3")  # the rows that train every weight


@dataclass(frozen=True)
class Row:
    key: str
    runner: str  # worker | baseline
    model: str  # 1B | 8B
    method: str  # lora | qlora | liger | full | fsdp (full, FSDP2 full_shard) | zero3 (full, DeepSpeed z3)
    needs: tuple[str, ...] = ()  # CUDA and the packages beyond the base install

    def name(self, precision: str) -> str:
        label = {"lora": f"LoRA {precision}", "liger": f"LoRA {precision} + Liger", "qlora": "QLoRA 4-bit nf4",
                 "full": f"full {precision}", "fsdp": f"full {precision}, FSDP2 full_shard",
                 "zero3": f"full {precision}, DeepSpeed z3"}[self.method]
        return f"{self.runner} {label} ({self.model})"


ROWS = [
    Row("worker-lora-1b", "worker", "1B", "lora"), Row("baseline-lora-1b", "baseline", "1B", "lora"),
    Row("worker-liger-1b", "worker", "1B", "liger", ("cuda", "liger_kernel")),
    Row("worker-qlora-1b", "worker", "1B", "qlora", ("cuda", "bitsandbytes")),
    Row("worker-full-1b", "worker", "1B", "full"), Row("baseline-full-1b", "baseline", "1B", "full"),
    Row("worker-lora-8b", "worker", "8B", "lora"), Row("baseline-lora-8b", "baseline", "8B", "lora"),
    Row("worker-qlora-8b", "worker", "8B", "qlora", ("cuda", "bitsandbytes")),
    # The sharded strategies on one GPU under torchrun: they run, and their memory meets the estimate.
    Row("worker-fsdp-1b", "worker", "1B", "fsdp", ("cuda",)),
    Row("worker-zero3-1b", "worker", "1B", "zero3", ("cuda", "deepspeed")),
]
# What the bars need first, so that a slow machine drops the rows that matter least.
RUN_ORDER = ["worker-lora-1b", "baseline-lora-1b", "worker-lora-8b", "worker-qlora-8b", "baseline-lora-8b",
             "worker-full-1b", "baseline-full-1b", "worker-liger-1b", "worker-qlora-1b", "worker-fsdp-1b",
             "worker-zero3-1b"]
# --smoke runs one of each kind of process (worker LoRA and full, baseline) to stay within a test's time on two
# cores; the other rows differ only in their config. `--smoke --rows all` runs every row that CPUs can.
SMOKE_ROWS = ["worker-lora-1b", "baseline-lora-1b", "worker-full-1b"]


@dataclass
class Context:
    profile: Profile
    work: Path
    out: Path
    deadline: float
    data_file: Path
    lengths: list[int]
    model_dirs: dict[str, Path] = field(default_factory=dict)
    on_gpu: bool = False
    summaries: dict[str, Any] = field(default_factory=dict)


# --- data ----------------------------------------------------------------------------------------------------

def write_dataset(path: Path, profile: Profile, seed: int = 7) -> list[int]:
    """Alpaca records with log-normal lengths in tokens (each pseudo-word is one token); returns those lengths."""
    rng = random.Random(seed)
    words = corpus_words()
    lengths = []
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(profile.samples()):
            total = min(max(int(rng.lognormvariate(math.log(profile.median_tokens), LENGTH_SIGMA)), 8),
                        profile.cutoff_len)
            prompt = max(1, int(total * rng.uniform(0.2, 0.6)))
            record = {"instruction": " ".join(rng.choices(words, k=prompt)), "input": "",
                      "output": " ".join(rng.choices(words, k=total - prompt))}
            handle.write(json.dumps(record) + "\n")
            lengths.append(min(total + TEMPLATE_TOKENS, profile.cutoff_len))
    return lengths


def row_config(row: Row, ctx: Context, output_dir: Path) -> dict[str, Any]:
    """The TrainingConfig both runners read: LoRA r8 / alpha 16 on all linear layers, explicit batch and steps."""
    p = ctx.profile
    config: dict[str, Any] = {
        "model_name_or_path": str(ctx.model_dirs[row.model]), "stage": "sft", "template": "chatml",
        "finetuning_type": "full" if row.method in FULL else "lora", "dataset": [str(ctx.data_file)],
        "cutoff_len": p.cutoff_len, "per_device_train_batch_size": p.batch_size,
        "gradient_accumulation_steps": p.grad_accum, "max_steps": p.max_steps[row.model],
        "learning_rate": 1e-5 if row.method in FULL else 1e-4, "logging_steps": p.warmup_steps,
        "save_strategy": "no", "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.0, "lora_target": ["all"],
        "bf16": p.bf16, "seed": 42, "output_dir": str(output_dir), "report_to": "none",
    }
    if row.method == "qlora":
        # QLoRA is the memory plan: its activations are checkpointed too, as LLaMA-Factory's QLoRA recipes do.
        config.update(quantization_bit=4, quantization_type="nf4", gradient_checkpointing=True)
    if row.method == "fsdp":
        config["fsdp"] = "full_shard"
    if row.method == "zero3":
        config["deepspeed"] = "z3"
    if row.method == "liger":
        config["enable_liger_kernel"] = True
    return config


# --- processes -----------------------------------------------------------------------------------------------

def launch(command: str, spec: dict[str, Any], work: Path, cap_s: float,
           torchrun: bool = False) -> tuple[int, bool, dict[str, Any]]:
    """Runs one gpu_check_rows.py command in its own process group: (exit code, hit the cap, result JSON)."""
    work.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "result": str(work / "result.json")}
    (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "TOKENIZERS_PARALLELISM": "false"}
    with (work / "row.log").open("w", encoding="utf-8") as log:
        # A sharded row runs as the worker does: under torchrun (DeepSpeed and FSDP need a process group).
        prefix = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"] if torchrun else []
        process = subprocess.Popen([sys.executable, *prefix, str(ROWS_SCRIPT), command, str(work / "spec.json")],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
        capped = False
        try:
            process.wait(timeout=max(cap_s, 1))
        except subprocess.TimeoutExpired:
            capped = True
        finally:
            if process.poll() is None:  # capped, or this process interrupted: the row's own group goes too
                os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
    result_file = work / "result.json"
    result = json.loads(result_file.read_text(encoding="utf-8")) if result_file.is_file() else {}
    return code, capped, result


def build_models(ctx: Context) -> dict[str, Any]:
    models = {name: {"dir": str(ctx.work / f"llama-{name}"), "config": config}
              for name, config in ctx.profile.models.items()}
    code, capped, result = launch("build", {"models": models, "needs_cuda": ctx.profile.needs_cuda},
                                  ctx.work / "build", ctx.profile.build_cap_s)
    if code != 0 or capped:
        tail = (ctx.work / "build" / "row.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        sys.exit(f"building the models failed (exit {code}{', time cap' if capped else ''}):\n{tail}")
    ctx.model_dirs = {name: Path(model["dir"]) for name, model in models.items()}
    ctx.on_gpu = result["device"]["kind"] == "cuda"
    return result


def missing(row: Row, ctx: Context) -> str | None:
    import importlib.util

    for need in row.needs:
        if need == "cuda" and not ctx.on_gpu:
            return "needs a CUDA GPU"
        if need != "cuda" and importlib.util.find_spec(need) is None:
            return f"{need} is not installed"
    return None


def run_row(row: Row, ctx: Context, unselected: str | None) -> dict[str, Any]:
    """One row in its own process; `unselected` is why it does not run when it is not among the chosen rows."""
    entry: dict[str, Any] = {"key": row.key, "row": row.name(ctx.profile.precision)}
    left = ctx.deadline - time.monotonic()
    reason = missing(row, ctx) or unselected
    if reason is None and left < ctx.profile.min_start_s[row.model]:
        reason = f"time budget spent ({left:.0f} s left)"
    if reason:
        return {**entry, "status": f"skipped: {reason}"}
    work = ctx.work / row.key
    config = row_config(row, ctx, work / "out")
    cap = min(ctx.profile.row_cap_s[row.model], left)
    started = time.monotonic()
    result = _run_process(row, config, ctx.profile.warmup_steps, work, cap, entry)
    entry["wall_s"] = round(time.monotonic() - started, 1)
    entry.update(measured_memory(result))
    keep_log(work / "row.log", ctx.out, row.key)
    add_figures(entry, row, config, ctx, result)
    return entry


def _run_process(row: Row, config: dict[str, Any], warmup_steps: int, work: Path, cap: float,
                 entry: dict[str, Any]) -> dict[str, Any]:
    """Runs the row, adds its status and throughput to `entry`, returns what the process measured."""
    if row.runner == "worker":
        from tuneforge.rundir import RunDir
        from tuneforge.schemas.run_spec import RunSpec

        run_dir = RunDir(work / "run").create(RunSpec(config=config))
        code, capped, result = launch("worker", {"run_dir": str(run_dir.path)}, work, cap,
                                      torchrun=row.method in ("fsdp", "zero3"))
        entry.update(worker_outcome(run_dir, warmup_steps, code))
    else:
        spec = {"config": config, "warmup_steps": warmup_steps, "work_dir": str(work / "trainer")}
        code, capped, result = launch("baseline", spec, work, cap)
        entry.update(baseline_outcome(result, code))
    if capped:
        entry["status"] = f"time cap {cap:.0f} s at step {entry.get('steps', 0)}"
    return result


def worker_outcome(run_dir: Any, warmup_steps: int, code: int) -> dict[str, Any]:
    from tuneforge.rundir import read_events

    events = read_events(run_dir.events_file) if run_dir.events_file.is_file() else []
    marks = [(e["step"], e["time"], e["tokens_seen"]) for e in events if e["type"] == "progress"]
    rate = throughput(marks, warmup_steps)
    final = events[-1] if events else {}
    if final.get("type") == "completed":
        status = "ok"
    elif final.get("type") == "failed":
        status = f"failed: {final.get('error')}"
    else:
        status = f"failed: exit {code}, no final event"
    return {"status": status, "steps": marks[-1][0] if marks else 0, **(rate or {})}


def baseline_outcome(result: dict[str, Any], code: int) -> dict[str, Any]:
    rate = result.get("throughput") or {}
    status = "ok" if code == 0 else f"failed: {result.get('error') or f'exit {code}'}"
    return {"status": status, "steps": result.get("steps", 0), **rate}


def measured_memory(result: dict[str, Any]) -> dict[str, Any]:
    device = result.get("device") or {}
    if device.get("kind") == "cuda" and "peak_reserved" in result:
        return {"peak_gib": round((result["peak_reserved"] + device["context_bytes"]) / GIB, 2),
                "allocated_gib": round(result["peak_allocated"] / GIB, 2)}
    if "peak_rss" in result:
        return {"peak_gib": round(result["peak_rss"] / GIB, 3)}
    return {}


def keep_log(log: Path, out: Path, key: str) -> None:
    """Each row's own log (the worker's or the Trainer's output) comes back with the results."""
    if log.is_file():
        (out / "gpu_check_rows").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, out / "gpu_check_rows" / f"{key}.log")


def work_root(profile: Profile) -> Path:
    """/dev/shm when it holds both models and the outputs (loading from RAM is fastest), else the temp folder."""
    if profile.needs_cuda and SHM.is_dir() and shutil.disk_usage(SHM).free > 48 * GIB:
        return Path(tempfile.mkdtemp(prefix="tf-gpu-check-", dir=SHM))
    return Path(tempfile.mkdtemp(prefix="tf-gpu-check-"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU: tiny models, 3 steps, fp32, no GPU-only rows")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")), help="where results go")
    parser.add_argument("--budget-s", type=float, default=450, help="no row starts after this many seconds")
    parser.add_argument("--rows", default="", help="comma-separated row keys to run, or 'all' (default: all, "
                        f"with --smoke {','.join(SMOKE_ROWS)})")
    args = parser.parse_args()
    profile = SMOKE if args.smoke else GPU
    chosen = args.rows.split(",") if args.rows and args.rows != "all" else []
    if not chosen and args.smoke and args.rows != "all":
        chosen = SMOKE_ROWS
    unselected = "not selected (--rows)" if args.rows else "not in --smoke's rows (--rows all runs it)"
    if unknown := set(chosen) - set(RUN_ORDER):
        parser.error(f"--rows: unknown {', '.join(sorted(unknown))}; the rows are {', '.join(RUN_ORDER)}")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    work = work_root(profile)
    try:
        ctx = Context(profile, work, args.out, started + args.budget_s, work / "sft.jsonl", [])
        ctx.lengths = write_dataset(ctx.data_file, profile)
        built = build_models(ctx)
        print(f"models built in {time.monotonic() - started:.0f} s: {built.get('models')}", flush=True)
        results = {}
        for key in RUN_ORDER:
            row = next(r for r in ROWS if r.key == key)
            results[key] = run_row(row, ctx, None if not chosen or key in chosen else unselected)
            print(f"{results[key]['row']}: {results[key]['status']} ({results[key].get('wall_s', 0)} s)", flush=True)
        report([results[r.key] for r in ROWS if r.key in results], ctx, built, time.monotonic() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
