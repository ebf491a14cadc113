"""LLaMA-Factory's options are honoured or refused with the reason, never "unknown key"."""

from __future__ import annotations

import pytest

from tuneforge.schemas import ConfigError, parse_training_config
from tuneforge.schemas.llamafactory_keys import _REASONS, NOT_SUPPORTED

# Keys users of LLaMA-Factory write every day that an earlier version called unknown.
EVERYDAY = ["use_fast_tokenizer", "resize_vocab", "new_special_tokens", "upcast_layernorm",
            "disable_gradient_checkpointing", "torch_compile", "ddp_find_unused_parameters", "eval_on_each_dataset",
            "push_to_hub", "ray_storage_path", "use_galore", "freeze_vision_tower", "fp8"]


def test_each_reason_lists_whole_key_names():
    assert all(isinstance(keys, tuple) and all(len(key) > 2 for key in keys) for keys in _REASONS.values())


@pytest.mark.parametrize("key", EVERYDAY)
def test_an_everyday_key_is_never_unknown(key):
    try:
        parse_training_config({"model_name_or_path": "m", key: True})
    except ConfigError as exc:
        (problem,) = exc.problems
        assert problem.field == key and "unknown key" not in problem.message
        assert problem.message.startswith("not supported: ") and NOT_SUPPORTED[key] in problem.message


def test_disable_gradient_checkpointing_means_the_opposite():
    assert parse_training_config({"model_name_or_path": "m", "disable_gradient_checkpointing": True}
                                 ).gradient_checkpointing is False


@pytest.mark.parametrize(("key", "value", "said"), [
    ("learning_rate", float("inf"), "finite number"), ("learning_rate", float("nan"), "finite number"),
    ("cutoff_len", 1e30, "at most 2,147,483,647"), ("seed", 2**63, "at most 2,147,483,647"),
])
def test_absurd_numbers_are_refused_naming_the_key(key, value, said):
    with pytest.raises(ConfigError) as caught:
        parse_training_config({"model_name_or_path": "m", key: value})
    (problem,) = caught.value.problems
    assert problem.field == key and said in problem.message


def test_a_name_with_a_trailing_newline_is_refused():
    from tuneforge.schemas.tasks import name_problem

    assert name_problem("good-name") is None and "'\\n'" in (name_problem("good-name\n") or "")
