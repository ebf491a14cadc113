"""A model's size and layer dimensions, read without torch: from config.json (and the safetensors headers next to
it, which give the exact parameter count) or from a GGUF file's metadata. The memory / time estimate and the
`auto` training values are computed from this."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

# Architectures whose config leaves tie_word_embeddings out and means False (transformers' PretrainedConfig
# default is True, which the others inherit).
UNTIED_BY_DEFAULT = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "olmo", "olmo2",
    "internlm2", "baichuan", "deepseek_v2", "deepseek_v3", "glm", "glm4", "chatglm", "yi",
})
QKV_BIAS = frozenset({"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"})  # bias on q/k/v, not on o
QK_NORM = frozenset({"qwen3", "qwen3_moe", "gemma3", "gemma3_text", "olmo2"})
FOUR_NORMS = frozenset({"gemma2", "gemma3", "gemma3_text"})  # pre- and post-norms around attention and MLP
MAX_HEADER_BYTES = 100 << 20


class ModelShapeError(Exception):
    """The model's size cannot be read; the message names the file and what is missing."""


class Linear(NamedTuple):
    """One linear layer of a decoder block: its name (LLaMA naming), sizes, and copies per block (MoE experts)."""

    name: str
    in_features: int
    out_features: int
    copies: int = 1

    @property
    def parameters(self) -> int:
        return self.in_features * self.out_features * self.copies


@dataclass(frozen=True)
class ModelShape:
    architecture: str  # "LlamaForCausalLM", or the GGUF architecture ("llama")
    model_type: str
    num_parameters: int  # unique parameters (tied embeddings counted once), as model.num_parameters() says
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int | None
    torch_dtype: str | None  # the stored dtype ("bfloat16"); None for GGUF (quantized blocks)
    head_dim: int = 0  # 0 = hidden_size / num_attention_heads
    num_experts: int = 0  # MoE: experts per block (0 = dense MLP)
    num_experts_per_token: int = 0
    count_source: Literal["safetensors", "gguf", "config"] = "config"  # config = computed from the dims

    @property
    def attention_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def kv_size(self) -> int:
        """Width of the K (and V) projection: smaller than hidden_size under grouped-query attention."""
        return self.num_key_value_heads * self.attention_head_dim

    def layer_linears(self) -> list[Linear]:
        """The linear layers of one decoder block, which LoRA targets and which do the block's matmuls."""
        h, q, kv, i = self.hidden_size, self.num_attention_heads * self.attention_head_dim, self.kv_size, \
            self.intermediate_size
        experts = max(self.num_experts, 1)
        return [
            Linear("q_proj", h, q), Linear("k_proj", h, kv), Linear("v_proj", h, kv), Linear("o_proj", q, h),
            Linear("gate_proj", h, i, experts), Linear("up_proj", h, i, experts), Linear("down_proj", i, h, experts),
        ]

    @property
    def embedding_parameters(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_parameters(self) -> int:
        """Parameters of the output projection stored apart from the embeddings (0 when tied)."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def block_parameters(self) -> int:
        """Parameters of one decoder block: everything but embeddings, LM head and the final norm."""
        rest = self.num_parameters - self.embedding_parameters - self.lm_head_parameters - self.hidden_size
        return max(rest // self.num_layers, 0)

    @property
    def active_block_parameters(self) -> int:
        """Parameters one token passes through in a block (MoE: only its experts)."""
        if self.num_experts <= 1:
            return self.block_parameters
        per_expert = sum(lin.in_features * lin.out_features for lin in self.layer_linears() if lin.copies > 1)
        idle = self.num_experts - max(self.num_experts_per_token, 1)
        return max(self.block_parameters - idle * per_expert, 0)


def read_model_shape(path: Path, gguf_file: str | None = None) -> ModelShape:
    """Shape of the model in `path`: a directory with config.json, a directory plus `gguf_file`, or a .gguf file."""
    path = Path(path)
    if gguf_file:
        return _shape_from_gguf(path / gguf_file)
    if path.is_file() and path.suffix == ".gguf":
        return _shape_from_gguf(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelShapeError(f"{config_file} not found: a model directory needs config.json (or give a .gguf file)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelShapeError(f"{config_file}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelShapeError(f"{config_file}: expected a JSON object of model settings")
    return _shape_from_config(config, config_file)


# --- config.json ---------------------------------------------------------------------------------------------

def _first(config: dict[str, Any], *keys: str) -> Any:
    return next((config[k] for k in keys if config.get(k) is not None), None)


def _required(config: dict[str, Any], where: Path, *keys: str) -> int:
    value = _first(config, *keys)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        names = " / ".join(keys)
        raise ModelShapeError(f"{where}: no positive whole number under {names}; tuneforge reads the model's size "
                              "from it (a decoder LLM config such as Llama's or Qwen's)")
    return value


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal configs keep the language model's dims under text_config."""
    text = config.get("text_config")
    if isinstance(text, dict) and "hidden_size" not in config:
        return {**config, **text}
    return config


def _shape_from_config(raw: dict[str, Any], where: Path) -> ModelShape:
    config = _text_config(raw)
    model_type = str(config.get("model_type") or "unknown")
    hidden = _required(config, where, "hidden_size", "n_embd", "d_model")
    heads = _required(config, where, "num_attention_heads", "n_head")
    experts = int(_first(config, "num_local_experts", "num_experts", "n_routed_experts") or 0)
    moe_width = _first(config, "moe_intermediate_size") if experts else None
    architectures = config.get("architectures") or [model_type]
    tied = config.get("tie_word_embeddings")
    shape = ModelShape(
        architecture=str(architectures[0]),
        model_type=model_type,
        num_parameters=0,
        hidden_size=hidden,
        num_layers=_required(config, where, "num_hidden_layers", "n_layer", "num_layers"),
        num_attention_heads=heads,
        num_key_value_heads=int(_first(config, "num_key_value_heads", "multi_query_group_num") or heads),
        intermediate_size=int(moe_width or _first(config, "intermediate_size", "ffn_hidden_size", "n_inner")
                              or 4 * hidden),
        vocab_size=_required(config, where, "vocab_size", "padded_vocab_size"),
        tie_word_embeddings=bool(tied) if tied is not None else model_type not in UNTIED_BY_DEFAULT,
        max_position_embeddings=_first(config, "max_position_embeddings", "n_positions", "seq_length"),
        torch_dtype=_first(raw, "torch_dtype", "dtype") or _first(config, "torch_dtype", "dtype"),
        head_dim=int(_first(config, "head_dim", "kv_channels") or 0),
        num_experts=experts,
        num_experts_per_token=int(_first(config, "num_experts_per_tok", "moe_topk") or (2 if experts else 0)),
    )
    exact = None if "quantization_config" in config else _safetensors_count(where.parent)
    if exact is not None:
        count, has_lm_head = exact
        tied = shape.tie_word_embeddings if config.get("tie_word_embeddings") is not None else not has_lm_head
        return replace(shape, num_parameters=count, tie_word_embeddings=tied, count_source="safetensors")
    return replace(shape, num_parameters=_count_from_dims(shape, config))


def _count_from_dims(shape: ModelShape, config: dict[str, Any]) -> int:
    """Embeddings, attention (GQA), gated MLP (× experts), norms, and the LM head unless tied."""
    h, hd, kind = shape.hidden_size, shape.attention_head_dim, shape.model_type
    q, kv = shape.num_attention_heads * hd, shape.kv_size
    attention = 2 * h * q + 2 * h * kv
    if config.get("attention_bias"):
        attention += q + 2 * kv + h
    elif kind in QKV_BIAS:
        attention += q + 2 * kv
    mlp = 3 * h * shape.intermediate_size + (2 * shape.intermediate_size + h if config.get("mlp_bias") else 0)
    if shape.num_experts:
        mlp = mlp * shape.num_experts + h * shape.num_experts  # the experts and the router
        shared = config.get("shared_expert_intermediate_size")
        mlp += 3 * h * shared + h if shared else 0
    norms = (4 if kind in FOUR_NORMS else 2) * h + (2 * hd if kind in QK_NORM else 0)
    block = attention + mlp + norms
    return shape.embedding_parameters + shape.num_layers * block + h + shape.lm_head_parameters


def _safetensors_header(file: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (8-byte little-endian length, then JSON): no weights are read."""
    with file.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ModelShapeError(f"{file}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            raise ModelShapeError(f"{file}: header of {length} bytes; not a safetensors file")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelShapeError(f"{file}: unreadable safetensors header") from None
    return header if isinstance(header, dict) else {}


def _safetensors_count(directory: Path) -> tuple[int, bool] | None:
    """(exact parameter count, whether an lm_head tensor is stored), or None when the weights are not here."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map") or {}
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return None
        files = [directory / name for name in sorted(set(weight_map.values()))]
    else:
        files = [directory / "model.safetensors"]
    if not files or not all(f.is_file() for f in files):
        return None
    count, has_lm_head = 0, False
    for file in files:
        for name, info in _safetensors_header(file).items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            count += math.prod(info.get("shape") or [])
            has_lm_head = has_lm_head or name.endswith("lm_head.weight")
    return (count, has_lm_head) if count else None


# --- GGUF ----------------------------------------------------------------------------------------------------

def _shape_from_gguf(file: Path) -> ModelShape:
    if not file.is_file():
        raise ModelShapeError(f"{file} not found")
    stat = file.stat()
    return _cached_gguf_shape(file.resolve(), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _cached_gguf_shape(file: Path, size: int, mtime_ns: int) -> ModelShape:
    """GGUFReader parses the whole vocabulary (~2 s for 49k tokens): read each file version once per process."""
    try:
        import gguf
    except ImportError:
        raise ModelShapeError("reading a GGUF file needs the `gguf` package: pip install gguf") from None
    try:
        reader = gguf.GGUFReader(file)
    except Exception as exc:  # the reader raises ValueError / struct errors / OSError on a bad file
        raise ModelShapeError(f"{file}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    arch = str(_gguf_value(reader, "general.architecture") or "")
    if not arch:
        raise ModelShapeError(f"{file}: the GGUF metadata has no general.architecture")

    def dim(key: str, required: bool = True) -> int:
        value = _gguf_value(reader, f"{arch}.{key}")
        if isinstance(value, list):  # per-layer widths (some architectures): the widest bounds the memory
            value = max(value) if value else None
        if value is None and required:
            raise ModelShapeError(f"{file}: the GGUF metadata has no {arch}.{key}")
        return int(value or 0)

    names = {tensor.name for tensor in reader.tensors}
    hidden, heads = dim("embedding_length"), dim("attention.head_count")
    experts = dim("expert_count", required=False)
    return ModelShape(
        architecture=arch,
        model_type=arch,
        num_parameters=sum(int(tensor.n_elements) for tensor in reader.tensors),
        hidden_size=hidden,
        num_layers=dim("block_count"),
        num_attention_heads=heads,
        num_key_value_heads=dim("attention.head_count_kv", required=False) or heads,
        intermediate_size=(experts and dim("expert_feed_forward_length", required=False))
        or dim("feed_forward_length"),
        vocab_size=dim("vocab_size", required=False) or _gguf_token_count(reader, file),
        tie_word_embeddings="output.weight" not in names,
        max_position_embeddings=dim("context_length", required=False) or None,
        torch_dtype=None,
        head_dim=dim("attention.key_length", required=False),
        num_experts=experts,
        num_experts_per_token=dim("expert_used_count", required=False),
        count_source="gguf",
    )


def _gguf_value(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except Exception:  # an odd field type must not stop the rest of the metadata from being read
        return None


def _gguf_token_count(reader: Any, file: Path) -> int:
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None or not tokens.data:
        raise ModelShapeError(f"{file}: the GGUF metadata gives no vocabulary size")
    return len(tokens.data)
