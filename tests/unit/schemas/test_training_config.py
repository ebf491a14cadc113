"""The training configuration as a user meets it: names, aliases, defaults and the errors for bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from tuneforge.schemas import (
    ALIASES,
    ConfigError,
    TrainingConfig,
    fields_by_group,
    load_config_file,
    parse_overrides,
    parse_training_config,
)

REPO = Path(__file__).resolve().parents[3]

# Written in the style of LLaMA-Factory's examples/train_lora/*.yaml (keys they really use).
LF_LORA_SFT = """\
### model
model_name_or_path: Qwen/Qwen3-4B-Instruct-2507
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: identity,alpaca_en_demo
template: qwen3_nothink
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/qwen3-4b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null

### eval
val_size: 0.1
per_device_eval_batch_size: 1
eval_strategy: steps
eval_steps: 500
"""

LF_EXTRA_KEYS = """\
model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
quantization_bit: 4
quantization_method: bitsandbytes
stage: dpo
finetuning_type: lora
pref_beta: 0.1
pref_loss: sigmoid
dataset: dpo_en_demo
template: llama3
image_max_pixels: 262144
video_max_pixels: 16384
enable_thinking: false
use_cpu: false
data_seed: 7
include_effective_tokens_per_second: true
flash_attn: fa2
output_dir: saves/llama3-8b/lora/dpo
"""


def problems_of(raw: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_training_config(raw, source="task.yaml")
    return {p.field: p.message for p in caught.value.problems}


def test_lf_example_yaml_parses_unchanged() -> None:
    config = parse_training_config(yaml.safe_load(LF_LORA_SFT))
    assert config.dataset == ["identity", "alpaca_en_demo"]
    assert config.lora_target == ["all"]
    assert config.report_to == ["none"]
    assert config.learning_rate == pytest.approx(1e-4)
    assert config.precision == "bf16"
    assert config.ddp_timeout == 180000000
    assert config.effective_lora_alpha == 16


def test_lf_keys_tuneforge_only_records_are_accepted() -> None:
    config = parse_training_config(yaml.safe_load(LF_EXTRA_KEYS))
    assert config.quantization_method == "bnb"
    assert config.stage == "dpo"  # valid here; the engine decides what it can run
    assert config.flash_attn == "fa2"


def test_defaults_follow_llama_factory() -> None:
    config = parse_training_config({"model_name_or_path": "m"})
    assert (config.stage, config.finetuning_type, config.template) == ("sft", "lora", None)
    assert (config.learning_rate, config.num_train_epochs, config.cutoff_len) == (5e-5, 3.0, 2048)
    assert (config.lora_rank, config.lora_alpha, config.lora_dropout) == (8, None, 0.0)
    assert config.lr_scheduler_type == "cosine" and config.optim == "adamw_torch"
    assert config.precision == "fp32" and config.divergence_guard is True


def test_aliases_map_to_field_names() -> None:
    raw = {"baseModel": "m", "lora_r": 16, "max_seq_length": 512, "batch_size": 4, "epochs": 2, "lr": "2e-4",
           "grad_accum": 4, "target_modules": "q_proj,v_proj", "scheduler": "linear", "optimizer": "sgd",
           "outputPath": "out", "system_prompt": "Be brief.", "neftune_alpha": 5, "val_ratio": 0.1,
           "compute_type": "fp16", "quantization": "int4"}
    config = parse_training_config(raw)
    assert config.model_name_or_path == "m" and config.lora_rank == 16 and config.cutoff_len == 512
    assert config.per_device_train_batch_size == 4 and config.num_train_epochs == 2
    assert config.learning_rate == pytest.approx(2e-4) and config.gradient_accumulation_steps == 4
    assert config.lora_target == ["q_proj", "v_proj"] and config.lr_scheduler_type == "linear"
    assert config.optim == "sgd" and config.output_dir == "out" and config.default_system == "Be brief."
    assert config.neftune_noise_alpha == 5 and config.val_size == 0.1
    assert config.precision == "fp16" and config.quantization_bit == 4
    dumped = config.model_dump_for_spec()
    assert not set(ALIASES) & set(dumped)  # output uses field names only


def test_alias_and_field_name_together_is_an_error_naming_both() -> None:
    problems = problems_of({"model_name_or_path": "m", "lora_r": 8, "lora_rank": 16})
    assert "lora_r" in problems["lora_rank"] and "lora_rank" in problems["lora_rank"]


def test_unknown_key_names_key_and_suggestion() -> None:
    problems = problems_of({"model_name_or_path": "m", "lerning_rate": 1e-4, "zzz_qqq": 1})
    assert problems["lerning_rate"] == "unknown key 'lerning_rate' — did you mean 'learning_rate'?"
    assert "did you mean" not in problems["zzz_qqq"]


def test_unsupported_llama_factory_option_says_so() -> None:
    problems = problems_of({"model_name_or_path": "m", "use_galore": True, "evaluation_strategy": "no"})
    assert list(problems) == ["use_galore"]
    assert "LLaMA-Factory option tuneforge does not support" in problems["use_galore"]


@pytest.mark.parametrize(
    ("key", "value", "field", "needle"),
    [
        ("lora_rank", 0, "lora_rank", "≥ 1, got 0"),
        ("lora_r", 0, "lora_rank (given as lora_r)", "≥ 1, got 0"),
        ("per_device_train_batch_size", 0, "per_device_train_batch_size", "≥ 1, got 0"),
        ("learning_rate", -1e-4, "learning_rate", "> 0"),
        ("val_size", 1.0, "val_size", "0 ≤ x < 1"),
        ("template", "llama9", "template", "unknown template 'llama9'"),
        ("lr_scheduler_type", "cosine_annealing", "lr_scheduler_type", "unknown scheduler"),
        ("optim", "adamw_hf", "optim", "unknown optimizer"),
        ("freeze_trainable_layers", 0, "freeze_trainable_layers", "must not be 0"),
        ("finetuning_type", "qlora", "finetuning_type", "'lora', 'freeze' or 'full'"),
    ],
)
def test_bad_value_names_the_field(key: str, value: object, field: str, needle: str) -> None:
    problems = problems_of({"model_name_or_path": "m", key: value})
    assert list(problems) == [field]
    assert needle in problems[field]


def test_all_problems_are_reported_in_one_error() -> None:
    raw = {"model_name_or_path": "m", "lora_rank": 0, "per_device_train_batch_size": 0,
           "template": "nope", "bf16": True, "fp16": True}
    with pytest.raises(ConfigError) as caught:
        parse_training_config(raw, source="my.yaml")
    text = str(caught.value)
    assert text.startswith("4 problems in my.yaml:\n  - ")
    for field in ("lora_rank", "per_device_train_batch_size", "template", "bf16, fp16"):
        assert f"  - {field}: " in text
    assert "Traceback" not in text and "pydantic" not in text


def test_cross_field_rules() -> None:
    problems = problems_of({"model_name_or_path": "m", "dataset": "a,b", "interleave_probs": "0.4,0.3,0.3",
                            "eval_strategy": "steps", "quantization_bit": 4, "finetuning_type": "full"})
    assert "one per dataset" in problems["interleave_probs"]
    assert "eval_strategy" not in problems  # needs the datasets (a folder's valid.jsonl): checked before launch
    assert "lora" in problems["quantization_bit"]
    assert parse_training_config({"model": "m", "dataset": "a,b", "interleave_probs": [0.7, 0.3],
                                  "eval_strategy": "steps", "eval_dataset": "c"}).interleave_probs == [0.7, 0.3]


def test_val_size_accepts_a_count() -> None:
    assert parse_training_config({"model": "m", "val_size": 200}).val_size == 200


def test_template_auto_means_unset() -> None:
    assert parse_training_config({"model": "m", "template": "auto"}).template is None
    assert parse_training_config({"model": "m", "template": "tokenizer"}).template == "tokenizer"


def test_missing_model_is_reported_with_the_other_problems() -> None:
    problems = problems_of({"cutoff_len": 4})
    assert problems == {"model_name_or_path": "is required", "cutoff_len": "must be ≥ 8, got 4"}


def test_overrides_parse_with_yaml_types() -> None:
    overrides = parse_overrides(["lr=2e-4", "packing=true", "dataset=a,b", "lora_rank=16", "template=null",
                                 "run_name=exp 1", "lora_target=[q_proj, v_proj]"])
    assert overrides == {"lr": 2e-4, "packing": True, "dataset": "a,b", "lora_rank": 16, "template": None,
                         "run_name": "exp 1", "lora_target": ["q_proj", "v_proj"]}
    with pytest.raises(ConfigError) as caught:
        parse_overrides(["learning_rate"])
    assert caught.value.problems[0].field == "learning_rate"
    assert "key=value" in caught.value.problems[0].message


def test_spec_dump_round_trips_and_hides_the_token() -> None:
    config = parse_training_config({**yaml.safe_load(LF_LORA_SFT), "hf_hub_token": "hf_secret"})
    dumped = config.model_dump_for_spec()
    assert "hf_hub_token" not in dumped and "hf_secret" not in json.dumps(dumped)
    assert "hf_secret" not in repr(config)
    again = parse_training_config(json.loads(json.dumps(dumped)))
    assert again.model_dump_for_spec() == dumped


def test_load_config_file_yaml_json_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "lora.yaml"
    good.write_text(LF_LORA_SFT, encoding="utf-8")
    data, path = load_config_file(good)
    assert path == good.resolve() and data["lora_rank"] == 8
    (tmp_path / "c.json").write_text(json.dumps({"model": "m"}), encoding="utf-8")
    assert load_config_file(tmp_path / "c.json")[0] == {"model": "m"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\nlora_rank: 8\n  cutoff_len: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config_file(bad)
    assert caught.value.problems[0].field.startswith(f"{bad.resolve()}:")
    with pytest.raises(ConfigError) as missing:
        load_config_file(tmp_path / "nope.yaml")
    assert str((tmp_path / "nope.yaml").resolve()) in str(missing.value)


def test_every_field_is_documented_for_the_generated_form() -> None:
    grouped = fields_by_group()
    names = [field["name"] for fields in grouped.values() for field in fields]
    assert sorted(names) == sorted(TrainingConfig.model_fields)
    for field in (f for fields in grouped.values() for f in fields):
        assert field["help_en"] and field["help_zh"], field["name"]
    cutoff = next(f for f in grouped["data"] if f["name"] == "cutoff_len")
    assert cutoff["constraints"] == {"ge": 8} and "max_seq_length" in cutoff["aliases"]
    stage = next(f for f in grouped["method"] if f["name"] == "stage")
    assert stage["choices"] == ["pt", "sft", "rm", "dpo", "kto", "ppo", "grpo"]


def test_committed_parameter_docs_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("gen_param_docs", REPO / "scripts" / "gen_param_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (REPO / "docs" / "parameters.md").read_text(encoding="utf-8")
    assert committed == module.render(), "run: python scripts/gen_param_docs.py"
