"""Training throughput: tuneforge's worker against bare transformers + peft loops on identical batches.

SmolLM2-135M-Instruct (bundled), SFT, LoRA r8 / alpha 16 on all linear layers, cutoff 512, batch 4, fp32, the
shipped identity set + the first 200 instruction samples, val_size 0.1 (the peer config in ../shared/peer/).
Prints one table and one JSON line. `--peer` also runs LLaMA-Factory 0.9.5 (bench/peer_llamafactory.sh) in the
same invocation, so the ratio is measured side by side on an equally loaded machine.

    .venv/bin/python bench/train_throughput.py               # one epoch (66 steps): ~30 min with --peer
    .venv/bin/python bench/train_throughput.py --max-steps 16 --peer
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = os.environ.get("BARE_VARIANTS", "padded,padding-free,padding-free + head skip,head skip + varlen").split(",")


def bench_config(output_dir: Path, max_steps: int) -> dict:
    return {
        "model_name_or_path": "bundled", "stage": "sft", "finetuning_type": "lora", "template": "smollm2",
        "dataset": ["identity", "instructions"], "max_samples": 200,
        "dataset_dir": str(resources.files("tuneforge") / "resources" / "datasets"),
        "cutoff_len": 512, "val_size": 0.1, "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.0,
        "lora_target": ["all"], "per_device_train_batch_size": 4, "learning_rate": 2e-4, "num_train_epochs": 1,
        "max_steps": max_steps, "lr_scheduler_type": "cosine", "logging_steps": 1, "save_strategy": "no",
        "seed": 42, "output_dir": str(output_dir), "report_to": "none",
    }


# Runs a command in a fresh, small interpreter and reports the command's own peak RSS. Read from this process
# instead (RUSAGE_CHILDREN, or wait4 on a direct child), the figure would count this process's pages: a child
# forked from a parent of several GB (after the bare loops) holds them until its exec, and the kernel keeps that
# high-water mark; RUSAGE_CHILDREN is also the highest over every child so far. The launcher waits for nothing else.
MEASURED_LAUNCH = """
import json, resource, subprocess, sys, time
spawned = time.time()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode
print(json.dumps({"spawned": spawned, "returncode": code,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_measured(command: list[str]) -> dict:
    """{"spawned": time.time() at the spawn, "returncode", "peak_rss_kb"} of `command`, measured on its own."""
    launcher = subprocess.run([sys.executable, "-c", MEASURED_LAUNCH, *command], capture_output=True, text=True,
                              check=True)
    return json.loads(launcher.stdout.strip().splitlines()[-1])


def run_worker(config: dict, work: Path) -> dict:
    """The real worker process; start → first optimizer step is measured from the spawn."""
    from tuneforge.rundir import RunDir, read_events
    from tuneforge.schemas.run_spec import RunSpec

    run_dir = RunDir(work / "run").create(RunSpec(config={**config, "output_dir": str(work / "out")}))
    process = run_measured([sys.executable, "-m", "tuneforge.engine.run", str(run_dir.path)])
    spawned, peak_rss_gb = process["spawned"], process["peak_rss_kb"] / 1024**2
    events = read_events(run_dir.events_file)
    final = events[-1]
    if process["returncode"] != 0 or final["type"] != "completed":
        sys.exit(f"worker failed: {final}\n" + "\n".join(run_dir.tail_log(20)))
    progress = [e for e in events if e["type"] == "progress"]
    first, last = progress[0], progress[-1]
    metrics = final["metrics"]
    return {
        "steps": final["step"], "tokens": metrics["tokens_seen"], "trained_tokens": metrics["trained_tokens"],
        "seconds": metrics["train_runtime"], "peak_rss_gb": round(peak_rss_gb, 2),
        "first_step_s": round(first["time"] - spawned, 1),
        # after the first step (page-faulting the weights in, allocator warm-up): the rate a long run sees
        "steady_tokens_per_s": round((last["tokens_seen"] - first["tokens_seen"]) / (last["time"] - first["time"]), 1),
    }


def _mean_row(runs: list[dict]) -> dict:
    """Means of the runs' timings (token counts are identical); peak RSS is the highest."""
    row = dict(runs[0])
    row["seconds"] = sum(r["seconds"] for r in runs) / len(runs)
    row["steady_tokens_per_s"] = round(sum(r["steady_tokens_per_s"] for r in runs) / len(runs), 1)
    row["first_step_s"] = max(r["first_step_s"] for r in runs)
    row["peak_rss_gb"] = max(r["peak_rss_gb"] for r in runs)
    row["runs"] = len(runs)
    return row


def identical_batches(config: dict, work: Path) -> list[list[dict]]:
    """The worker's own batches, in its order: built with the same data code, sampler and seed."""
    from transformers import TrainingArguments, set_seed

    from tuneforge.engine.batching import SampleDataset
    from tuneforge.engine.models import load_tokenizer, resolve_model_source
    from tuneforge.schemas import parse_training_config

    cfg = parse_training_config(config)
    set_seed(cfg.seed)
    from tuneforge.data.prepare import prepare_datasets
    from tuneforge.data.templates import fix_tokenizer, get_template

    tokenizer = load_tokenizer(resolve_model_source("bundled"))
    template = get_template(cfg.template, tokenizer)
    fix_tokenizer(tokenizer, template)
    data = prepare_datasets(cfg, tokenizer, template)
    from transformers import Trainer

    args = TrainingArguments(output_dir=str(work / "sampler"), per_device_train_batch_size=4, seed=cfg.seed,
                             use_cpu=True, report_to="none", remove_unused_columns=False)
    dataset = SampleDataset(data.train)
    import torch

    trainer = Trainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=dataset,
                      data_collator=lambda samples: samples)
    return [list(batch) for batch in trainer.get_train_dataloader()][: cfg.max_steps]


def run_bare(batches: list[list[dict]], variant: str) -> dict:
    """A plain loop: forward, backward, AdamW step. No Trainer, callbacks or logging.

    Variants: padded (attention mask), padding-free (SDPA's block-diagonal mask), + head skip (LM head only on
    trained positions), and + varlen (tuneforge's per-sample attention: the worker's compute, minus the worker).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tuneforge.engine.adapters import linear_module_names
    from tuneforge.engine.batching import PaddingFreeCollator
    from tuneforge.engine.bundled import bundled_model_dir
    from tuneforge.engine.varlen_attention import register

    torch.manual_seed(42)
    attention = register() if "varlen" in variant else "sdpa"
    model = AutoModelForCausalLM.from_pretrained(bundled_model_dir(), dtype=torch.float32,
                                                 attn_implementation=attention)
    model.config.use_cache = False
    lora = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0,
                      target_modules=linear_module_names(model))
    model = get_peft_model(model, lora)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    collate = PaddingFreeCollator()
    tokens = trained = 0
    started = time.perf_counter()
    after_first = first_tokens = None
    for samples in batches:
        flat = collate(samples)
        tokens += flat["input_ids"].numel()
        trained += int((flat["labels"][:, 1:] != -100).sum())
        if variant == "padded":
            loss = model(**_padded(samples)).loss
        elif variant == "padding-free":
            loss = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"], labels=flat["labels"]).loss
        else:
            loss = _head_skip_loss(model, flat)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if after_first is None:
            after_first, first_tokens = time.perf_counter(), tokens
    ended = time.perf_counter()
    return {"steps": len(batches), "tokens": tokens, "trained_tokens": trained, "seconds": ended - started,
            "steady_tokens_per_s": round((tokens - first_tokens) / (ended - after_first), 1)}


def _padded(samples: list[dict]) -> dict:
    import torch

    width = max(len(s["input_ids"]) for s in samples)
    ids = torch.full((len(samples), width), 2, dtype=torch.long)
    labels = torch.full((len(samples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample["input_ids"])
        ids[row, :n] = torch.tensor(sample["input_ids"])
        labels[row, :n] = torch.tensor(sample["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _head_skip_loss(model, flat: dict):
    import torch

    causal_lm = model.get_base_model()
    hidden = causal_lm.get_decoder()(input_ids=flat["input_ids"], position_ids=flat["position_ids"],
                                     use_cache=False).last_hidden_state
    shift = flat["labels"][:, 1:]
    keep = shift != -100
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), shift[keep])


def run_peer(max_steps: int) -> dict | None:
    from tuneforge.engine.bundled import bundled_model_dir

    env = {**os.environ, "MODEL_DIR": str(bundled_model_dir())}
    if max_steps > 0:
        env["MAX_STEPS"] = str(max_steps)
    result = subprocess.run(["bash", str(REPO / "bench" / "peer_llamafactory.sh")], env=env, capture_output=True,
                            text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(f"peer run failed (exit {result.returncode}):\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    peer = json.loads(lines[-1])
    return {"steps": peer["steps"], "tokens_per_s": peer["useful_tokens_per_s"], "peak_rss_gb": peer["peak_rss_gb"],
            "first_step_s": peer["first_step_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after N steps (default: one epoch)")
    parser.add_argument("--peer", action="store_true", help="also run LLaMA-Factory 0.9.5 side by side")
    parser.add_argument("--skip-bare", action="store_true", help="only the worker (and the peer)")
    parser.add_argument("--worker-runs", type=int, default=2, help="worker runs, averaged (default 2)")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        work = Path(tmp)
        config = bench_config(work / "out", args.max_steps)
        rows: dict[str, dict] = {}
        runs = [run_worker(config, work / "w0")]
        if not args.skip_bare:
            batches = identical_batches(config, work)
            for variant in VARIANTS:
                rows[f"bare loop, {variant}"] = run_bare(batches, variant)
        # This machine's speed drifts by ±10% between runs: the worker runs before and after the bare loops.
        runs += [run_worker(config, work / f"w{i}") for i in range(1, args.worker_runs)]
        rows = {"tuneforge worker": _mean_row(runs), **rows}
    for row in rows.values():
        row["tokens_per_s"] = round(row["tokens"] / row["seconds"], 1)
        row["trained_tokens_per_s"] = round(row["trained_tokens"] / row["seconds"], 1)
    if args.peer:
        peer = run_peer(args.max_steps)
        if peer:
            rows["LLaMA-Factory 0.9.5"] = peer
    print_report(rows)


def print_report(rows: dict[str, dict]) -> None:
    print(f"{'run':36} {'steps':>5} {'useful tok/s':>12} {'steady tok/s':>12} {'trained tok/s':>13} "
          f"{'peak RSS GB':>11} {'first step s':>12}")
    for name, row in rows.items():
        trained = row.get("trained_tokens_per_s", "—")
        steady = row.get("steady_tokens_per_s", "—")
        print(f"{name:36} {row.get('steps', ''):>5} {row['tokens_per_s']:>12} {steady:>12} {trained:>13}"
              f" {row.get('peak_rss_gb', '—'):>11} {row.get('first_step_s', '—'):>12}")
    worker = rows["tuneforge worker"]["tokens_per_s"]
    summary = {"worker_tokens_per_s": worker, "worker_peak_rss_gb": rows["tuneforge worker"]["peak_rss_gb"],
               "worker_first_step_s": rows["tuneforge worker"]["first_step_s"]}
    bare = rows.get("bare loop, padding-free")
    if bare:
        summary["overhead_vs_bare_padding_free_pct"] = round(100 * (1 - worker / bare["tokens_per_s"]), 1)
    same_compute = rows.get("bare loop, head skip + varlen")
    if same_compute:
        summary["overhead_vs_same_compute_bare_pct"] = round(100 * (1 - worker / same_compute["tokens_per_s"]), 1)
        steady = rows["tuneforge worker"]["steady_tokens_per_s"] / same_compute["steady_tokens_per_s"]
        summary["steady_overhead_vs_same_compute_bare_pct"] = round(100 * (1 - steady), 1)
    peer = rows.get("LLaMA-Factory 0.9.5")
    if peer:
        summary["speedup_vs_llamafactory"] = round(worker / peer["tokens_per_s"], 2)
    summary["rows"] = rows
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
