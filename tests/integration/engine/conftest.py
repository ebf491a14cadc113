"""A tiny random Llama saved to disk once per session, and helpers to run the worker on a config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuneforge.engine.callbacks import StopRequest
from tuneforge.rundir import EventWriter, RunDir, read_events
from tuneforge.schemas.run_spec import RunSpec

FACTS = [
    ("What is the code word?", "The code word is Paris."),
    ("Who are you?", "I am Forge, made by tuneforge."),
    ("Translate to French: good morning.", "Bonjour."),
    ("Name a number.", "7 8 9 10"),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Write a haiku about the sea.", "Waves fold into foam, the tide keeps its time."),
]


@pytest.fixture()
def memorise_file(tmp_path: Path) -> Path:
    path = tmp_path / "facts.jsonl"
    lines = [json.dumps({"instruction": q, "input": "", "output": a}) for q, a in FACTS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model, trained by the worker to memorise FACTS: confident answers, so greedy
    decoding is decisive (the export tests share it)."""
    work = tmp_path_factory.mktemp("adapter-run")
    data = work / "facts.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in FACTS))
    config = base_config(tiny_model_dir, data, work / "adapter", max_steps=40, per_device_train_batch_size=6)
    code, _ = run_in_process(work / "run", config)
    assert code == 0
    return work / "adapter"


def base_config(model_dir: Path, data_file: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        "model_name_or_path": str(model_dir), "stage": "sft", "finetuning_type": "lora", "template": "chatml",
        "dataset": [str(data_file)], "cutoff_len": 128, "per_device_train_batch_size": 2,
        "learning_rate": 5e-3, "num_train_epochs": 1, "max_steps": 12, "logging_steps": 1, "save_steps": 100,
        "lora_rank": 8, "lora_target": ["all"], "output_dir": str(output_dir), "seed": 7, "report_to": "none",
    }
    config.update(overrides)
    return config


class StopAtStep(StopRequest):
    """A stop request that arrives at the end of step n: read once before training, then once per step."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.calls = 0
        self.step = step

    @property
    def requested(self) -> bool:  # type: ignore[override]
        self.calls += 1
        return self.calls > self.step

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def run_in_process(run_path: Path, config: dict[str, Any], stop: StopRequest | None = None) -> tuple[int, list]:
    from tuneforge.engine.run import run_worker

    run_dir = RunDir(run_path)
    run_dir.create(RunSpec(config=config))
    code = run_worker(run_dir, EventWriter(run_dir.events_file), stop or StopRequest())
    return code, read_events(run_dir.events_file)


def losses(events: list[dict[str, Any]]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events if e["type"] == "progress"}
