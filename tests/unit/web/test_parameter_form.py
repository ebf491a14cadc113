"""The create form is generated from the schema: every training parameter appears exactly once, with the schema's
type, default, range and help in both languages; the layout follows seed 000's steps and seed 001's sections."""

from __future__ import annotations

import json

from tuneforge.schemas.parameter_reference import fields_by_group
from tuneforge.schemas.training import GROUPS
from tuneforge.service.tasks.planning import TOP_LEVEL
from tuneforge.web.parameter_form import (
    FIELD_SECTIONS,
    GROUP_SECTIONS,
    SECTION_STEPS,
    copied_values,
    form_steps,
)


def all_fields(steps):
    return [f for sections in steps.values() for s in sections for f in s.basic + s.advanced]


def section_keys(steps, name):
    (section,) = [s for sections in steps.values() for s in sections if s.name == name]
    return {f.key for f in section.basic + section.advanced}


def test_every_schema_field_appears_once_except_the_top_level_inputs():
    schema = [d["name"] for group in fields_by_group().values() for d in group]
    shown = [f.key for f in all_fields(form_steps())]
    assert sorted(shown) == sorted(n for n in schema if n not in TOP_LEVEL)
    assert len(shown) == len(set(shown))


def test_the_layout_names_only_real_groups_fields_and_sections():
    schema = {d["name"] for group in fields_by_group().values() for d in group}
    assert set(GROUP_SECTIONS) == set(GROUPS)
    assert set(FIELD_SECTIONS) <= schema  # a renamed field fails here instead of silently moving
    assert set(GROUP_SECTIONS.values()) | set(FIELD_SECTIONS.values()) <= set(SECTION_STEPS)


def test_seed_001_sections():
    steps = form_steps()
    assert [s.name for s in steps["parameters"]] == ["hyper", "lora", "freeze", "advanced", "eval", "others"]
    assert {"learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
            "max_grad_norm", "lr_scheduler_type"} <= section_keys(steps, "hyper")
    assert {"lora_rank", "lora_alpha", "lora_dropout", "loraplus_lr_ratio"} <= section_keys(steps, "lora")
    assert {"quantization_bit", "quantization_method", "rope_scaling", "flash_attn"} <= section_keys(steps, "advanced")
    assert {"logging_steps", "save_steps", "warmup_steps", "neftune_noise_alpha", "optim"} <= section_keys(steps,
                                                                                                            "others")
    assert {"cutoff_len", "max_samples", "val_size"} <= section_keys(steps, "data")
    assert {"template", "stage", "finetuning_type"} <= section_keys(steps, "model") | section_keys(steps, "method")
    assert [s.name for s in steps["model"]] == ["model", "method"]


def test_fields_carry_the_schema_metadata():
    described = {d["name"]: d for group in fields_by_group().values() for d in group}
    for f in all_fields(form_steps()):
        d = described[f.key]
        assert f.help_en == d["help_en"] and f.help_zh == d["help_zh"] and f.help_zh
        assert f.advanced == d["advanced"] and f.range == d["range"] and f.recommended == d["recommended"]
        assert f.name == f"trainingArgs.{f.key}"  # the API's error path, so errors land at the field
    by_key = {f.key: f for f in all_fields(form_steps())}
    assert by_key["lora_rank"].widget == "number" and by_key["lora_rank"].range
    assert by_key["trust_remote_code"].widget == "checkbox"
    assert by_key["hf_hub_token"].widget == "password"
    # Choices travel as JSON, so the quantization bits stay numbers and "unset" is null.
    assert [value for value, _ in by_key["quantization_bit"].choices] == ["null", "4", "8"]
    assert json.loads(by_key["finetuning_type"].value) == "lora"
    # An optional flag (None = automatic) keeps its third state: a select, unset by default.
    assert by_key["packing"].widget == "select" and by_key["packing"].value == "null"
    assert [value for value, _ in by_key["gradient_checkpointing"].choices] == ["null", "true", "false"]


def test_basic_fields_are_shown_and_advanced_ones_folded():
    steps = form_steps()
    hyper = next(s for s in steps["parameters"] if s.name == "hyper")
    assert all(not f.advanced for f in hyper.basic) and all(f.advanced for f in hyper.advanced)
    assert "learning_rate" in {f.key for f in hyper.basic}
    assert "adam_beta1" in {f.key for f in hyper.advanced}


def test_a_copied_task_pre_fills_the_form():
    values, extra = copied_values({"lr": 2e-4, "lora_r": 16, "compute_type": "bf16",
                                   "lora_target": ["q_proj", "v_proj"], "model_name_or_path": "/m", "dataset": "d",
                                   "output_dir": "/o"})
    assert values == {"learning_rate": 2e-4, "lora_rank": 16, "bf16": True, "lora_target": ["q_proj", "v_proj"]}
    assert extra == {}
    by_key = {f.key: f for f in all_fields(form_steps(values))}
    assert by_key["learning_rate"].value == "0.0002" and by_key["learning_rate"].default_text != "0.0002"
    assert by_key["lora_rank"].value == "16"
    assert by_key["bf16"].checked
    assert by_key["lora_target"].value == "q_proj, v_proj"


def test_rewards_with_inline_graders_round_trip_through_the_text_input() -> None:
    """A copied GRPO task shows its rewards as a JSON list (commas would cut an inline grader), and the schema reads
    that text back to the same rewards; plain names stay comma-separated."""
    from tuneforge.schemas import TrainingConfig
    from tuneforge.web.parameter_form import as_text

    grader = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
              "reference": "{{item.answer}}", "operation": "eq"}
    rewards = [{"grader": grader, "weight": 2.0}, {"grader": "number_only", "weight": 1.0}]
    text = as_text(rewards)
    config = TrainingConfig(model_name_or_path="m", stage="grpo", rewards=text)
    assert [r.model_dump() for r in config.rewards or []] == rewards
    assert as_text(["exact_answer", "number_only"]) == "exact_answer, number_only"
