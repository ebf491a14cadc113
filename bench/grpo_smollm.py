"""GRPO on the bundled SmolLM2-135M-Instruct with graders as rewards: does the reward rise?

Trains a LoRA adapter through the worker (the same code a task runs) on the shipped arithmetic prompts, rewarded by
the shipped graders: `exact_answer` (string_check: the answer equals the reference, weight 1) and `number_only`
(python, sandboxed: the answer is a bare number, as the prompts ask; weight 0.5). Prints the reward of every step,
the share of answers each grader passed at a few steps, one table comparing the first and last 20% of the steps,
and one JSON line.

    python bench/grpo_smollm.py [--steps 60] [--lr 2e-4] [--kinds addition,subtraction,word_count]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--kinds", default="addition,subtraction,word_count",
                        help="which prompts of the shipped set: addition, subtraction, word_count, uppercase (comma-"
                             "separated, or 'all')")
    parser.add_argument("--temperature", type=float, default=0.8)
    options = parser.parse_args()

    from tuneforge.engine.callbacks import StopRequest
    from tuneforge.engine.run import run_worker
    from tuneforge.rundir import EventWriter, RunDir, read_events
    from tuneforge.schemas.run_spec import RunSpec

    examples = REPO / "examples"
    work = Path(tempfile.mkdtemp(prefix="grpo-bench-"))
    prompts = work / "prompts.jsonl"
    rows = (examples / "data" / "arithmetic_prompts.jsonl").read_text(encoding="utf-8").splitlines()
    kinds = None if options.kinds == "all" else set(options.kinds.split(","))
    prompts.write_text("\n".join(r for r in rows if kinds is None or json.loads(r)["kind"] in kinds) + "\n",
                       encoding="utf-8")
    config = {
        "model_name_or_path": "bundled", "stage": "grpo", "finetuning_type": "lora", "lora_rank": 16,
        "lora_target": "all", "template": "smollm2", "dataset": str(prompts), "cutoff_len": 128, "seed": 7,
        "rewards": [{"grader": str(examples / "graders" / "exact_answer.json"), "weight": 1.0},
                    {"grader": str(examples / "graders" / "number_only.json"), "weight": 0.5}],
        "num_generations": options.generations, "max_new_tokens": 24, "temperature": options.temperature, "top_p": 1.0,
        "top_k": 0, "per_device_train_batch_size": options.generations * options.prompts_per_step,
        "learning_rate": options.lr, "lr_scheduler_type": "constant", "max_steps": options.steps,
        "logging_steps": 1, "save_steps": 10_000, "output_dir": str(work / "out"), "report_to": "none",
    }
    run_dir = RunDir(work / "run")
    run_dir.create(RunSpec(config=config))
    started = time.monotonic()
    code = run_worker(run_dir, EventWriter(run_dir.events_file), StopRequest())
    seconds = time.monotonic() - started
    events = read_events(run_dir.events_file)
    if code != 0:
        raise SystemExit(f"the run failed: {events[-1]}")
    rewards = [(e["step"], e["metrics"]["reward"]) for e in events
               if e["type"] == "progress" and "reward" in (e.get("metrics") or {})]
    for step, reward in rewards:
        print(f"step {step:3d}  reward {reward:.3f}")
    _grader_shares(run_dir.completions_file, [1, len(rewards) // 2, len(rewards)])
    fifth = max(1, len(rewards) // 5)
    first = sum(r for _, r in rewards[:fifth]) / fifth
    last = sum(r for _, r in rewards[-fifth:]) / fifth
    print(f"\n| steps | first 20% mean reward | last 20% mean reward | wall time |\n|---|---|---|---|\n"
          f"| {len(rewards)} | {first:.3f} | {last:.3f} | {seconds:.0f} s |")
    print(json.dumps({"bench": "grpo_smollm", "steps": len(rewards), "first_fifth_reward": round(first, 4),
                      "last_fifth_reward": round(last, 4), "seconds": round(seconds, 1),
                      "completions": str(run_dir.completions_file)}))


def _grader_shares(path: Path, steps: list[int]) -> None:
    """What moved the reward: each grader's mean score over a step's sampled answers."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for step in steps:
        at = [line["scores"] for line in lines if line["step"] == step]
        if at:
            means = {name: sum(s[name] for s in at) / len(at) for name in at[0]}
            print(f"step {step:3d}  " + "  ".join(f"{name} {value:.2f}" for name, value in means.items()))


if __name__ == "__main__":
    main()
