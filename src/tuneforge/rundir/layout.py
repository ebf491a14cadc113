"""The run directory: the only place a worker writes (besides the output dir its spec names)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuneforge.schemas.run_spec import RunSpec


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.json"

    @property
    def events_file(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def trainer_log_file(self) -> Path:
        """LLaMA-Factory's trainer_log.jsonl field names, so users' existing tools read it."""
        return self.path / "trainer_log.jsonl"

    @property
    def completions_file(self) -> Path:
        """GRPO / PPO: sampled completions with their scores, one JSON line each:
        {"step", "prompt", "completion", "reward", "scores": {grader name: score}, "reasons": {name: why 0}}."""
        return self.path / "completions.jsonl"

    @property
    def stop_file(self) -> Path:
        """Written by the service to ask the worker to finish its step, save and stop (any executor, any node)."""
        return self.path / "STOP"

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def default_output_dir(self) -> Path:
        return self.path / "output"

    def create(self, spec: RunSpec) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        self.spec_file.write_text(spec.model_dump_json(indent=2), encoding="utf-8")
        return self

    def read_spec(self) -> RunSpec:
        if not self.spec_file.is_file():
            raise FileNotFoundError(f"{self.spec_file} does not exist: a run directory needs a spec.json")
        return RunSpec.model_validate(json.loads(self.spec_file.read_text(encoding="utf-8")))

    def tail_log(self, lines: int = 20) -> list[str]:
        if not self.log_file.is_file():
            return []
        with self.log_file.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
        return text.splitlines()[-lines:]
