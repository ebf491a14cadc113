"""The training methods' bars on the tiny random model, through the worker: what a user would watch.

rm: validation accuracy on a separable toy preference set; dpo: reward margin and accuracy, first vs last steps;
kto: loss, first vs last; ppo and grpo: mean reward on a learnable python grader, first vs last 20% of the steps.
Prints one table and one JSON line. The suite asserts the same runs (tests/integration/engine/test_*_stage*.py).

    python bench/stage_bars.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.integration.engine.conftest import base_config, run_in_process  # noqa: E402
from tests.integration.engine.test_grpo_stage import LETTER_E, _prompts  # noqa: E402
from tests.integration.engine.test_preference_stages import POLITE, PROMPTS, RUDE, _pairs, _write  # noqa: E402


def _series(events: list[dict[str, Any]], name: str) -> list[float]:
    return [e["metrics"][name] for e in events if e["type"] == "progress" and name in (e.get("metrics") or {})]


def _ends(values: list[float]) -> tuple[float, float]:
    fifth = max(1, len(values) // 5)
    return sum(values[:fifth]) / fifth, sum(values[-fifth:]) / fifth


def main() -> None:
    from tests.fixtures.tiny import build_tiny_llama

    root = Path(tempfile.mkdtemp(prefix="stage-bars-"))
    model = root / "model"
    build_tiny_llama(model)
    pairs = _write(root / "pairs", _pairs(48))
    kto_rows = [{"messages": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} {i}"},
                              {"role": "assistant", "content": POLITE if i % 2 == 0 else RUDE}], "label": i % 2 == 0}
                for i in range(48)]
    kto = _write(root / "kto", kto_rows, ranking=False)
    common = {"per_device_train_batch_size": 4, "learning_rate": 5e-3}
    sampling = {"max_new_tokens": 16, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "per_device_train_batch_size": 8,
                "max_steps": 40, "learning_rate": 1e-2, "finetuning_type": "full", "rewards": [{"grader": LETTER_E}]}
    runs = {
        "rm": (pairs, {"stage": "rm", "val_size": 8, "max_steps": 24, "eval_strategy": "steps", "eval_steps": 24,
                       "dataset": "toy", "dataset_dir": str(pairs), **common}),
        "dpo": (pairs, {"stage": "dpo", "max_steps": 16, "dataset": "toy", "dataset_dir": str(pairs), **common}),
        "kto": (kto, {"stage": "kto", "max_steps": 16, "dataset": "toy", "dataset_dir": str(kto), **common}),
        "ppo": (_prompts(root), {"stage": "ppo", "kl_coef": 0.01, **sampling}),
        "grpo": (_prompts(root), {"stage": "grpo", "num_generations": 4, **sampling}),
    }
    rows, figures = [], {}
    for name, (data, overrides) in runs.items():
        started = time.monotonic()
        code, events = run_in_process(root / name / "run", base_config(model, data, root / name / "out", **overrides))
        seconds = time.monotonic() - started
        if code != 0:
            raise SystemExit(f"{name} failed: {events[-1]}")
        if name == "rm":
            value = events[-1]["metrics"]["eval_accuracy"]
            rows.append((name, "eval accuracy (held-out pairs)", "", f"{value:.3f}", seconds))
            figures[name] = {"eval_accuracy": value}
        elif name == "dpo":
            margins = _ends(_series(events, "rewards/margins"))
            accuracies = _ends(_series(events, "rewards/accuracies"))
            rows.append((name, "rewards/margins", f"{margins[0]:.3f}", f"{margins[1]:.3f}", seconds))
            rows.append((name, "rewards/accuracies", f"{accuracies[0]:.3f}", f"{accuracies[1]:.3f}", seconds))
            figures[name] = {"margins": margins, "accuracies": accuracies}
        elif name == "kto":
            loss = _ends([e["loss"] for e in events if e["type"] == "progress"])
            rows.append((name, "loss", f"{loss[0]:.3f}", f"{loss[1]:.3f}", seconds))
            figures[name] = {"loss": loss}
        else:
            reward = _ends(_series(events, "reward"))
            rows.append((name, "mean reward (letter_e grader)", f"{reward[0]:.3f}", f"{reward[1]:.3f}", seconds))
            figures[name] = {"reward": reward}
    print("| stage | figure | first 20% of steps | last 20% / final | wall time |\n|---|---|---|---|---|")
    for name, figure, first, last, seconds in rows:
        print(f"| {name} | {figure} | {first} | {last} | {seconds:.0f} s |")
    print(json.dumps({"bench": "stage_bars", **figures}))


if __name__ == "__main__":
    main()
