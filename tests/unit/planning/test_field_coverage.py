"""Every training setting is either honoured — a named test would fail if the engine ignored it — or refused by the
planner before any compute on a CPU host without optional packages. A new field that is neither fails here."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from tuneforge.planning.capabilities import DataFacts, capability_problems
from tuneforge.planning.devices import Device
from tuneforge.planning.host import HostFacts
from tuneforge.schemas import TrainingConfig, parse_training_config

REPO = Path(__file__).resolve().parents[3]
SETTINGS_TABLE = "tests/integration/engine/test_settings_honoured.py"

# Honoured where the generic "changes what the worker builds" table cannot see it (outputs, callbacks, speed).
HONOURED_BY: dict[str, str] = {
    "model_name_or_path": "tests/integration/engine/test_model_families.py::"
                          "test_lora_sft_trains_and_saves_a_matching_chat_template",
    "gguf_file": "tests/integration/engine/test_export.py::test_bundled_smollm2_q8_0_gguf_same_greedy_answers",
    "trust_remote_code": "tests/unit/engine/test_remote_code.py::test_remote_code_runs_only_when_trusted",
    "stage": "tests/unit/data/test_data_prepare.py::test_pretraining_packs_by_default",
    "dataset_dir": "tests/unit/data/test_data_prepare.py::test_works_with_the_training_config_schema",
    "preprocessing_num_workers": "tests/unit/data/test_tokenize_workers.py::"
                                 "test_slices_are_encoded_in_separate_processes",
    "overwrite_cache": "tests/unit/data/test_tokenized_cache.py::"
                       "test_a_saved_copy_is_read_back_and_overwrite_cache_replaces_it",
    "tokenized_path": "tests/unit/data/test_tokenized_cache.py::"
                      "test_a_saved_copy_is_read_back_and_overwrite_cache_replaces_it",
    "resume_from_checkpoint": "tests/integration/engine/test_worker_training.py::"
                              "test_resume_reproduces_the_uninterrupted_loss_curve",
    "output_dir": "tests/integration/test_examples.py::test_small_example_trains_for_two_steps",
    "overwrite_output_dir": "tests/integration/service/test_same_verdict.py::test_an_output_holding_a_model_is_refused",
    "plot_loss": "tests/integration/engine/test_worker_training.py::test_loss_falls_on_a_memorisation_set",
    "loraplus_lr_ratio": "tests/integration/engine/test_adapter_variants.py::"
                         "test_loraplus_gives_b_matrices_a_higher_learning_rate",
    "loraplus_lr_embedding": "tests/integration/engine/test_adapter_variants.py::"
                             "test_loraplus_gives_b_matrices_a_higher_learning_rate",
    "pissa_convert": "tests/integration/engine/test_pissa_convert.py::"
                     "test_converted_pissa_adapter_reproduces_the_trained_model_on_the_original_base",
    "divergence_guard": "tests/integration/engine/test_divergence_guard.py::"
                        "test_without_the_guard_the_same_run_goes_on",
    "divergence_factor": "tests/unit/engine/test_divergence_settings.py::test_a_higher_factor_tolerates_the_spike",
    "divergence_patience": "tests/unit/engine/test_divergence_settings.py::"
                           "test_patience_is_the_number_of_diverging_logs_in_a_row",
    "do_eval": "tests/integration/engine/test_final_evaluation.py::test_do_eval_decides_the_final_evaluation",
    "include_effective_tokens_per_second": "tests/integration/engine/test_final_evaluation.py::"
                                           "test_trainer_metrics_named_as_transformers_does",
    "include_num_input_tokens_seen": "tests/integration/engine/test_final_evaluation.py::"
                                     "test_trainer_metrics_named_as_transformers_does",
    "simpo_gamma": "tests/integration/engine/test_preference_stages.py::test_simpo_gamma_moves_the_loss",
    "rewards": "tests/integration/engine/test_grpo_stage.py::test_reward_rises_on_a_learnable_grader",
    "quantization_bit": "tests/integration/engine/test_qlora.py::"
                        "test_qlora_4bit_trains_and_its_adapter_fits_the_unquantized_base",
    **{name: "tests/integration/engine/test_qlora.py::test_quantization_type_and_double_quantization_reach_the_weights"
       for name in ("quantization_type", "double_quantization")},
    **{name: "tests/integration/engine/test_grpo_stage.py::test_grpo_settings_reach_the_trainer"
       for name in ("num_generations", "kl_coef", "grpo_loss")},
    "ray_num_workers": "tests/integration/engine/test_ray_workers.py::"
                       "test_two_ray_workers_train_like_one_process_with_the_same_global_batch",
}

# Refused on a CPU host without optional packages: the settings that make the planner name the field.
REFUSED_WITH: dict[str, dict[str, Any]] = {
    "do_train": {"do_train": False},
    "do_predict": {"do_predict": True},
    "predict_with_generate": {"predict_with_generate": True},
    "max_new_tokens": {"max_new_tokens": 64},
    "temperature": {"temperature": 0.5},
    "top_p": {"top_p": 0.9},
    "top_k": {"top_k": 5},
    "pref_beta": {"pref_beta": 0.2},
    "pref_ftx": {"pref_ftx": 0.5},
    "pref_loss": {"pref_loss": "ipo"},
    "kto_chosen_weight": {"kto_chosen_weight": 2.0},
    "kto_rejected_weight": {"kto_rejected_weight": 2.0},
    "reward_model": {"reward_model": "/models/rm"},
    "streaming": {"streaming": True},
    "enable_thinking": {"enable_thinking": False},
    "media_dir": {"media_dir": "/data/images"},
    "image_max_pixels": {"image_max_pixels": 1000},
    "video_max_pixels": {"video_max_pixels": 1000},
    "group_by_length": {"group_by_length": True},
    "report_to": {"report_to": "tensorboard"},
    "run_name": {"run_name": "x"},
    "logging_dir": {"logging_dir": "/tmp/tb"},
    "use_cpu": {"use_cpu": True},
    "fp16": {"fp16": True},
    "model_revision": {"model_revision": "v2"},
    "cache_dir": {"cache_dir": "/tmp/hf"},
    "hf_hub_token": {"hf_hub_token": "hf_x"},
    "use_llama_pro": {"use_llama_pro": True},
    "quantization_bit": {"quantization_bit": 4},
    "quantization_method": {"quantization_bit": 4, "quantization_method": "hqq"},
    "quantization_type": {"quantization_bit": 4, "quantization_type": "fp4"},
    "double_quantization": {"quantization_bit": 4, "double_quantization": False},
    "flash_attn": {"flash_attn": "fa2"},
    "enable_liger_kernel": {"enable_liger_kernel": True},
    "use_unsloth": {"use_unsloth": True},
    "deepspeed": {"deepspeed": "/configs/ds_z3.json"},
    "fsdp": {"fsdp": "full_shard"},
    "ray_num_workers": {"ray_num_workers": 2},  # without the ray package
    "resources_per_worker": {"resources_per_worker": {"CPU": 1}},
    "placement_strategy": {"placement_strategy": "SPREAD"},
    "ray_init_kwargs": {"ray_init_kwargs": {"namespace": "team-a"}},
    "rope_scaling": {"rope_scaling": "yarn"},  # cutoff_len within the model's context
    "optim": {"optim": "adamw_8bit"},
    "save_steps": {"save_strategy": "epoch", "save_steps": 10},
}

CPU_HOST = HostFacts([Device(0, "cpu", "test CPU", 16 * 2**30, 12 * 2**30)], frozenset())


def _honoured_by_table() -> set[str]:
    tree = ast.parse((REPO / SETTINGS_TABLE).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "CASES":
            assert isinstance(node.value, ast.Dict)
            return {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
    raise AssertionError(f"{SETTINGS_TABLE} has no CASES table")


def _test_exists(node_id: str) -> bool:
    path, _, name = node_id.partition("::")
    file = REPO / path
    if not file.is_file():
        return False
    tree = ast.parse(file.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def test_every_field_is_honoured_or_refused():
    covered = _honoured_by_table() | set(HONOURED_BY) | set(REFUSED_WITH)
    missing = sorted(set(TrainingConfig.model_fields) - covered)
    assert not missing, f"neither proven honoured nor refused: {missing}"
    unknown = sorted(covered - set(TrainingConfig.model_fields))
    assert not unknown, f"not fields of TrainingConfig: {unknown}"


@pytest.mark.parametrize("field", sorted(HONOURED_BY))
def test_the_named_behaviour_test_exists(field):
    assert _test_exists(HONOURED_BY[field]), f"{field}: no test {HONOURED_BY[field]}"


@pytest.mark.parametrize("field", sorted(REFUSED_WITH))
def test_the_planner_refuses_it_naming_the_field(field):
    config = {"model_name_or_path": "/models/tiny", "dataset": "data.jsonl", "cutoff_len": 256,
              **REFUSED_WITH[field]}
    cfg = parse_training_config(config)
    problems = capability_problems(cfg, CPU_HOST, DataFacts(model_is_local=True, has_eval_data=False,
                                                            context_length=2048))
    named = {p.field: p.message for p in problems}
    assert field in named, f"{field}: not refused; the planner said {named}"
    assert len(named[field]) > 30, "the reason says why and what to do instead"
