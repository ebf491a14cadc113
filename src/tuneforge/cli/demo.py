"""`tuneforge demo`: teach the bundled SmolLM2-135M-Instruct that it is "Forge", made by tuneforge.

The model's default system prompt names SmolLM and anchors its identity, and one epoch at LLaMA-Factory's example
settings leaves the answer unchanged; the demo uses a neutral system prompt, a higher learning rate and a few
epochs over the small identity set, which takes a couple of minutes on two CPU cores.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

QUESTION = "Who are you?"
SYSTEM = "You are a helpful AI assistant."


def demo_config(output_dir: Path, epochs: float | None = None) -> dict:
    datasets = resources.files("tuneforge") / "resources" / "datasets"
    return {
        "model_name_or_path": "bundled",
        "stage": "sft",
        "finetuning_type": "lora",
        "template": "smollm2",
        "default_system": SYSTEM,
        "dataset": ["identity"],
        "dataset_dir": str(datasets),
        "cutoff_len": 256,
        "val_size": 0.1,
        "lora_rank": 16,
        "lora_alpha": 32,
        "lora_target": ["all"],
        "learning_rate": 1e-3,
        "num_train_epochs": epochs or 4,
        "per_device_train_batch_size": 8,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 2,
        "logging_steps": 2,
        "save_strategy": "no",
        "eval_on_start": True,
        "output_dir": str(output_dir),
        "overwrite_output_dir": True,
        "seed": 42,
    }


def _answer_settings():
    from tuneforge.engine.generate import GenerationSettings

    # Greedy and short: the base model tends to loop, and the point is the first sentence.
    return GenerationSettings(max_new_tokens=60, repetition_penalty=1.1)


def run_demo(output_dir: Path | None, epochs: float | None, console: Console, err: Console) -> int:
    from tuneforge.cli.plan_views import print_problems
    from tuneforge.cli.training import launch
    from tuneforge.engine.bundled import bundled_model_dir
    from tuneforge.engine.generate import load_chat_model
    from tuneforge.settings import get_settings

    answer = _answer_settings()
    started = time.monotonic()
    output_dir = (output_dir or get_settings().home / "demo").resolve()
    with console.status("preparing the bundled model (converted once from GGUF, ~30 s the first time)"):
        bundled_model_dir()
    question = [{"role": "user", "content": QUESTION}]
    with console.status("asking the base model"):
        before = load_chat_model("bundled", template="smollm2", system=SYSTEM).chat(question, answer)
    console.print(f"[bold]before:[/bold] {QUESTION} → {before}", highlight=False)
    from tuneforge.planning import PlanInput, PlanRejected, detect_host, plan_training

    try:
        plan = plan_training(PlanInput(demo_config(output_dir, epochs), detect_host(),
                                       models_cache=get_settings().models_path))
    except PlanRejected as exc:
        print_problems(exc.problems, "the demo's config", err)
        return 2
    code = launch(plan, None, False, console)
    if code != 0:
        return code
    with console.status("asking the fine-tuned model"):
        after = load_chat_model("bundled", adapter=str(output_dir)).chat(question, answer)
    _print_summary(console, before, after, output_dir, time.monotonic() - started)
    return 0


def _print_summary(console: Console, before: str, after: str, output_dir: Path, seconds: float) -> None:
    from tuneforge.rundir import RunDir, read_events

    evals = [e for e in read_events(RunDir(output_dir).events_file) if e["type"] == "eval"]
    table = Table(title=f"tuneforge demo ({seconds:.0f} s)")
    table.add_column("")
    table.add_column("before")
    table.add_column("after")
    table.add_row(QUESTION, before, after)
    if evals:
        table.add_row("eval loss", f"{evals[0]['eval_loss']:.3f}", f"{evals[-1]['eval_loss']:.3f}")
    console.print(table)
    console.print(f"adapter: {output_dir}\nchat with it: tuneforge chat --adapter {output_dir}")
