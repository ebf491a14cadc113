"""One planner, one verdict: each config below gets the same answer — ok, or the same fields named — from
`tuneforge train --check`, estimateTask (which the console's estimate step calls) and createTask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tuneforge.cli.main import app

OK: frozenset[str] = frozenset()
API_FIELDS = {"baseModel": "model_name_or_path", "datasetPath": "dataset", "outputPath": "output_dir"}

# name → (training settings on top of a small valid LoRA SFT run, the fields the verdict names; empty = ok)
TABLE: dict[str, tuple[dict[str, Any], frozenset[str]]] = {
    "lora": ({}, OK),
    "freeze": ({"finetuning_type": "freeze", "freeze_trainable_layers": 1}, OK),
    "full": ({"finetuning_type": "full", "learning_rate": 1e-5}, OK),
    "validation-steps": ({"val_size": 0.25, "eval_strategy": "steps", "eval_steps": 2}, OK),
    "auto-values": ({"learning_rate": "auto", "per_device_train_batch_size": "auto"}, OK),
    "pre-training": ({"stage": "pt"}, OK),
    "tokenise-in-two-processes": ({"preprocessing_num_workers": 2, "neat_packing": True}, OK),
    "rope-beyond-context": ({"rope_scaling": "linear", "cutoff_len": 600}, OK),
    "lf-disable-gc": ({"disable_gradient_checkpointing": True}, OK),
    "dpo-on-sft-data": ({"stage": "dpo"}, frozenset({"dataset"})),
    "ppo-reward-model-missing": ({"stage": "ppo", "reward_model": "DIR/no-rm"}, frozenset({"reward_model"})),
    "grpo-without-reward": ({"stage": "grpo", "per_device_train_batch_size": 4}, frozenset({"rewards"})),
    "grpo-ragged-groups": ({"stage": "grpo", "num_generations": 4, "rewards": [{"grader": {
        "type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.output}}",
        "operation": "eq"}}]}, frozenset({"num_generations"})),
    "grpo-inline-grader": ({"stage": "grpo", "num_generations": 2, "rewards": [{"grader": {
        "type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.output}}",
        "operation": "eq"}}]}, OK),
    "qlora": ({"quantization_bit": 4}, OK),  # bitsandbytes (the dev extra) quantizes on CPUs too
    "hqq-without-package": ({"quantization_bit": 4, "quantization_method": "hqq"},
                            frozenset({"quantization_bit", "quantization_method"})),
    "unsloth": ({"use_unsloth": True}, frozenset({"use_unsloth"})),
    "flash-attention-2": ({"flash_attn": "fa2"}, frozenset({"flash_attn"})),
    "liger": ({"enable_liger_kernel": True}, frozenset({"enable_liger_kernel"})),
    "deepspeed": ({"deepspeed": "DIR/ds_z2.json"}, frozenset({"deepspeed"})),
    "deepspeed-preset": ({"deepspeed": "examples/deepspeed/ds_z3_config.json"}, frozenset({"deepspeed"})),
    "fsdp": ({"fsdp": "full_shard"}, frozenset({"fsdp"})),
    "compute-type-auto": ({"compute_type": "auto"}, OK),
    "streaming": ({"streaming": True}, frozenset({"streaming"})),
    "pissa-convert-alone": ({"pissa_convert": True}, frozenset({"pissa_convert"})),
    "predict": ({"do_predict": True, "predict_with_generate": True},
                frozenset({"do_predict", "predict_with_generate"})),
    "group-by-length": ({"group_by_length": True}, frozenset({"group_by_length"})),
    "eval-without-data": ({"eval_strategy": "steps"}, frozenset({"eval_strategy"})),
    "rank-zero": ({"lora_rank": 0}, frozenset({"lora_rank"})),
    "unknown-key": ({"lora_rnak": 4}, frozenset({"lora_rnak"})),
    "galore": ({"use_galore": True, "galore_rank": 16}, frozenset({"use_galore", "galore_rank"})),
    "bad-template": ({"template": "nonesuch"}, frozenset({"template"})),
    "missing-dataset": ({"dataset": "DIR/missing.jsonl"}, frozenset({"dataset"})),
    "missing-model": ({"model_name_or_path": "DIR/no-model"}, frozenset({"model_name_or_path"})),
    "bf16-and-fp16": ({"bf16": True, "fp16": True}, frozenset({"bf16, fp16"})),
    "fp16-on-cpu": ({"fp16": True}, frozenset({"fp16"})),
    "lora-setting-on-full": ({"finetuning_type": "full", "lora_rank": 16}, frozenset({"lora_rank"})),
    "rope-within-context": ({"rope_scaling": "dynamic"}, frozenset({"rope_scaling"})),
    "wandb-not-installed": ({"report_to": "wandb"}, frozenset({"report_to"})),
    "8-bit-adam": ({"optim": "adamw_8bit"}, OK),
    "generation-length": ({"max_new_tokens": 64}, frozenset({"max_new_tokens"})),
    "no-thinking": ({"enable_thinking": False}, frozenset({"enable_thinking"})),
    "use-cpu-on-cpu-host": ({"use_cpu": True}, frozenset({"use_cpu"})),
    "probs-without-interleave": ({"dataset": "DATA,DATA", "interleave_probs": [0.5, 0.5]},
                                 frozenset({"interleave_probs"})),
    "several-problems": ({"stage": "kto", "lora_dropout": 2, "streaming": True},
                         frozenset({"dataset", "lora_dropout", "streaming"})),
}


def _settings(tiny_model_dir: Path, dataset: Path, out: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    config = {"model_name_or_path": str(tiny_model_dir), "dataset": str(dataset), "template": "chatml",
              "cutoff_len": 64, "per_device_train_batch_size": 2, "max_steps": 4, "report_to": "none",
              "output_dir": str(out)}
    for key, value in overrides.items():
        if isinstance(value, str):
            value = value.replace("DIR", str(out.parent)).replace("DATA", str(dataset))
        config[key] = value
    return config


def _cli_verdict(config: dict[str, Any], folder: Path) -> frozenset[str]:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(path), "--check"])
    if result.exit_code == 0:
        return OK
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    fields = [line.strip().split(": ", 1)[0] for line in lines]
    return frozenset(f.removeprefix("- ").split(" (given as")[0] for f in fields)


def _api_verdict(client: Any, route: str, name: str, config: dict[str, Any]) -> frozenset[str]:
    training = {k: v for k, v in config.items() if k not in ("model_name_or_path", "dataset", "output_dir")}
    body = {"name": name, "baseModel": config["model_name_or_path"], "datasetPath": config["dataset"],
            "outputPath": config["output_dir"], "trainingArgs": training}
    response = client.post(f"/finetuning/{route}", json=body)
    if response.status_code in (200, 201):
        return OK
    assert 400 <= response.status_code < 500, response.text
    details = response.json()["error"]["details"]
    return frozenset(API_FIELDS.get(d["field"], d["field"].removeprefix("trainingArgs.")) for d in details)


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    rows = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}, in a few words."} for i in range(12)]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (tmp_path / "ds_z2.json").write_text('{"zero_optimization": {"stage": 2}}', encoding="utf-8")
    return path


def test_every_surface_gives_the_same_verdict(make_client, tiny_model_dir, data_file, tmp_path):
    assert len(TABLE) >= 30
    client = make_client(run_scheduler=False)
    disagreements = []
    for index, (name, (overrides, expected)) in enumerate(TABLE.items()):
        folder = tmp_path / f"case-{index}"
        folder.mkdir()
        config = _settings(tiny_model_dir, data_file, folder / "out", overrides)
        verdicts = {"train --check": _cli_verdict(config, folder),
                    "estimateTask": _api_verdict(client, "estimateTask", name, config),
                    "createTask": _api_verdict(client, "createTask", name, config)}
        if any(v != expected for v in verdicts.values()):
            disagreements.append(f"{name}: expected {sorted(expected)}, got {verdicts}")
    assert not disagreements, "\n".join(disagreements)


def test_an_output_holding_a_model_is_refused(make_client, tiny_model_dir, data_file, tmp_path):
    out = tmp_path / "done"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}", encoding="utf-8")
    config = _settings(tiny_model_dir, data_file, out, {})
    client = make_client(run_scheduler=False)
    assert _cli_verdict(config, tmp_path) == _api_verdict(client, "estimateTask", "x", config) == {"output_dir"}
    config["overwrite_output_dir"] = True
    assert _cli_verdict(config, tmp_path) == _api_verdict(client, "estimateTask", "x", config) == OK
