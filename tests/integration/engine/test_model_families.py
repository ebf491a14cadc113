"""LoRA SFT works on every supported architecture, and the saved tokenizer formats chats exactly as training did."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.fixtures.tiny import build_tokenizer
from tests.integration.engine.conftest import base_config, losses, run_in_process
from tuneforge.data.records import Message

# (model_type for AutoConfig, chat template name): seed 003's families that need no remote code
FAMILIES = [
    ("llama", "llama3"),
    ("llama", "llama2"),
    ("qwen2", "qwen"),
    ("qwen3", "qwen3"),
    ("glm4", "glm4"),
    ("mistral", "mistral"),
]
CONVERSATION = [
    Message("system", "You are Forge."),
    Message("user", "Who are you?"),
    Message("assistant", "I am Forge."),
    Message("user", "What is the capital of France?"),
    Message("assistant", "Paris."),
]


def build_tiny_model(model_type: str, out_dir: Path) -> None:
    """A 2-layer, hidden-64 random model of the given architecture, saved with the tiny tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = build_tokenizer()
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def linear_layer_names(model_dir: Path) -> set[str]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


@pytest.fixture(scope="module")
def family_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = {}
    for model_type in dict.fromkeys(m for m, _ in FAMILIES):
        paths[model_type] = tmp_path_factory.mktemp(f"tiny-{model_type}")
        build_tiny_model(model_type, paths[model_type])
    return paths


@pytest.mark.parametrize(("model_type", "template"), FAMILIES, ids=[f"{m}-{t}" for m, t in FAMILIES])
def test_lora_sft_trains_and_saves_a_matching_chat_template(tmp_path, family_models, memorise_file, model_type,
                                                             template):
    from transformers import AutoConfig, AutoTokenizer

    from tuneforge.data.templates import get_template

    out = tmp_path / "out"
    config = base_config(family_models[model_type], memorise_file, out, template=template, max_steps=4,
                         cutoff_len=64)
    code, events = run_in_process(tmp_path / "run", config)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    assert AutoConfig.from_pretrained(family_models[model_type]).model_type == model_type
    curve = losses(events)
    assert sorted(curve) == [1, 2, 3, 4] and all(math.isfinite(v) for v in curve.values()), curve
    assert (out / "adapter_model.safetensors").is_file()
    adapted = set(json.loads((out / "adapter_config.json").read_text())["target_modules"])
    assert adapted == linear_layer_names(family_models[model_type]) - {"lm_head"}, adapted

    saved = AutoTokenizer.from_pretrained(out)
    dicts = [{"role": m.role, "content": m.content} for m in CONVERSATION]
    training = get_template(template, saved)
    assert saved.apply_chat_template(dicts, tokenize=False) == training.render(CONVERSATION)
    asked = dicts[:2]
    assert (saved.apply_chat_template(asked, tokenize=False, add_generation_prompt=True)
            == training.render_prompt(CONVERSATION[:2]))
