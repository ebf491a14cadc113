"""Write a Llama- or Qwen2-family model as one GGUF file with its byte-level BPE tokenizer and chat template,
readable by llama.cpp and by transformers (`from_pretrained(dir, gguf_file=...)`).

f16 and q8_0 are written here with the `gguf` package. The K-quants (q4_K_M, q5_K_M) are not in that package:
they are written as f16 first, then quantized by llama.cpp's own quantizer through llama-cpp-python
(`quantize_gguf`), so the file is exactly what llama.cpp's `llama-quantize` would make."""

from __future__ import annotations

import ctypes
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.engine.errors import EngineError, NotYetSupported
from tuneforge.schemas.export_spec import GGUF_EXTRA_INSTALL

log = logging.getLogger(__name__)

# transformers model_type -> GGUF architecture name; both use llama.cpp's standard tensor names.
GGUF_ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2"}
Q8_BLOCK = 32  # values per q8_0 block: a row must be a multiple of it
# gguf type -> llama-cpp-python's name of the llama.cpp file type its quantizer writes
LLAMA_CPP_FTYPES = {"q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M"}
# ggml_log_level as this llama.cpp numbers them (the comment in llama-cpp-python's _logger.py has older values)
GGML_LOG_WARN, GGML_LOG_ERROR, GGML_LOG_CONT = 3, 4, 5
TensorProgress = Callable[[int, int, str], None]


def gguf_file_name(name: str, gguf_type: str) -> str:
    return f"{name}-{gguf_type}.gguf"


def write_gguf(model: Any, tokenizer: Any, path: Path, gguf_type: str, *, name: str,
               progress: TensorProgress | None = None) -> Path:
    """One f16 or q8_0 GGUF file at `path`; `progress(k, n, tensor_name)` after each tensor is converted."""
    if gguf_type not in ("f16", "q8_0"):
        raise ValueError(f"write_gguf writes f16 or q8_0, not {gguf_type} (see quantize_gguf)")
    import gguf

    config = model.config
    arch = GGUF_ARCHITECTURES.get(config.model_type)
    if arch is None:
        raise NotYetSupported(
            f"GGUF export supports the {', '.join(sorted(GGUF_ARCHITECTURES))} architectures, not "
            f"'{config.model_type}'",
            hint="export safetensors only (gguf: null), then convert with llama.cpp's convert_hf_to_gguf.py",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch)
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if gguf_type == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    _add_hyperparameters(writer, config, name, file_type)
    _add_tokenizer(writer, tokenizer, config.vocab_size)
    _add_tensors(writer, model, arch, gguf_type, progress)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def quantize_gguf(source: Path, target: Path, gguf_type: str) -> Path:
    """Quantize the f16 GGUF `source` into `target` with llama.cpp's quantizer (q4_K_M or q5_K_M, no importance
    matrix). K-quant blocks hold 256 values, so a tensor whose rows are not a multiple of 256 long is written in
    the type llama.cpp falls back to (q5_0 / q5_1 / q8_0): in SmolLM2-135M (576 wide) every matrix but ffn_down,
    in a tiny test model every one. The file still loads everywhere; only less of it is K-quantized."""
    try:
        import llama_cpp
    except (ImportError, OSError) as exc:  # OSError: the package is there but its libllama does not load
        raise EngineError(f"gguf: {gguf_type} needs llama.cpp's quantizer, and llama-cpp-python does not load: "
                          f"{exc}", hint=f"{GGUF_EXTRA_INSTALL}, or choose gguf f16 or q8_0") from exc
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_CPP_FTYPES[gguf_type])
    # the cores this job may use, not every core of the host (no affinity on macOS: all of them)
    params.nthread = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    with _llama_cpp_log(llama_cpp) as errors:
        failed = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if failed:
        target.unlink(missing_ok=True)
        reason = "; ".join(errors) or "no reason given"
        raise EngineError(f"gguf: llama.cpp could not quantize to {gguf_type}: {reason}",
                          hint="choose gguf f16 or q8_0 (written without llama.cpp), or see export.log")
    return target


@contextmanager
def _llama_cpp_log(llama_cpp: Any) -> Iterator[list[str]]:
    """llama.cpp's log during the call goes to this module's log (its per-tensor lines at debug, the fallback
    warnings at info), its error lines into the list; llama-cpp-python's own handler is put back after."""
    errors: list[str] = []
    last = [GGML_LOG_ERROR]

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, _user_data: Any) -> None:
        level = last[0] if level == GGML_LOG_CONT else level
        last[0] = level
        line = text.decode("utf-8", errors="replace").strip()
        if line and level == GGML_LOG_ERROR:
            errors.append(line)
        log.log(logging.WARNING if level == GGML_LOG_ERROR else logging.INFO if level == GGML_LOG_WARN
                else logging.DEBUG, "llama.cpp: %s", line)

    saved, saved_data = llama_cpp.llama_log_callback(), ctypes.c_void_p()
    llama_cpp.llama_log_get(ctypes.byref(saved), ctypes.byref(saved_data))
    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield errors
    finally:
        llama_cpp.llama_log_set(saved, saved_data)


def _add_hyperparameters(writer: Any, config: Any, name: str, file_type: int) -> None:
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise NotYetSupported(
            f"GGUF export of a model with RoPE scaling '{rope['rope_type']}' is not supported yet",
            hint="export safetensors only (gguf: null)",
        )
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(name)
    writer.add_file_type(int(file_type))
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)


def _add_tensors(writer: Any, model: Any, arch: str, gguf_type: str, progress: TensorProgress | None) -> None:
    import gguf

    config = model.config
    arch_id = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch)
    names = gguf.get_tensor_name_map(arch_id, config.num_hidden_layers)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("rotary_emb.inv_freq")}
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # llama.cpp reads a missing output.weight as tied to the embeddings
    for index, (hf_name, tensor) in enumerate(state.items(), start=1):
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise EngineError(f"GGUF export: no GGUF name for the tensor '{hf_name}' of a {arch} model",
                              hint="export safetensors only (gguf: null)")
        data = tensor.detach().to("cpu").float().numpy()
        if arch == "llama":
            data = _permute_for_llama_cpp(data, gguf_name, config)
        data, qtype = _encode(data, gguf_type)
        writer.add_tensor(gguf_name, data, raw_dtype=qtype)
        if progress:
            progress(index, len(state), gguf_name)


def _permute_for_llama_cpp(data: np.ndarray, gguf_name: str, config: Any) -> np.ndarray:
    """llama.cpp's llama arch stores Q and K rows with each head's two rotary halves interleaved (transformers
    un-interleaves them on load): rows (half, pair) of a head become (pair, half)."""
    if ".attn_q." in gguf_name:
        heads = config.num_attention_heads
    elif ".attn_k." in gguf_name:
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    else:
        return data
    half = data.shape[0] // heads // 2
    return data.reshape(heads, 2, half, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)


def _encode(data: np.ndarray, gguf_type: str) -> tuple[np.ndarray, Any]:
    """Norms and biases stay f32 (as llama.cpp keeps them); matrices become f16 or q8_0 (f16 where a row does not
    split into q8_0 blocks)."""
    from gguf import GGMLQuantizationType, quants

    if data.ndim < 2:
        return data.astype(np.float32), GGMLQuantizationType.F32
    if gguf_type == "q8_0" and data.shape[-1] % Q8_BLOCK == 0:
        return quants.quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    return data.astype(np.float16), GGMLQuantizationType.F16


def _add_tokenizer(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    """A byte-level BPE ("gpt2") vocabulary: tokens by id, their types, merges, special ids, chat template."""
    from gguf import TokenType

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    if backend["model"]["type"] != "BPE" or "ByteLevel" not in json.dumps(backend.get("pre_tokenizer")):
        raise NotYetSupported(
            "GGUF export writes byte-level BPE tokenizers (Llama 3, Qwen2, SmolLM2, GPT-2 style); this one is "
            f"{backend['model']['type']}",
            hint="export safetensors only (gguf: null), then convert with llama.cpp's convert_hf_to_gguf.py",
        )
    by_id = {index: token for token, index in tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True).items()}
    added = {t["content"]: t["special"] for t in backend.get("added_tokens", [])}
    tokens, types = [], []
    for index in range(vocab_size):
        token = by_id.get(index)
        if token is None:  # embedding rows past the tokenizer (padded to a multiple of 64)
            tokens.append(f"[PAD{index}]")
            types.append(TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(TokenType.NORMAL if token not in added else
                         TokenType.CONTROL if added[token] else TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in backend["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(backend.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    _add_special_ids(writer, tokenizer)
    if isinstance(getattr(tokenizer, "chat_template", None), str):
        writer.add_chat_template(tokenizer.chat_template)


def _add_special_ids(writer: Any, tokenizer: Any) -> None:
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "unk": tokenizer.unk_token_id,
           "pad": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id}
    for key, token_id in ids.items():
        if token_id is not None:
            getattr(writer, f"add_{key}_token_id")(int(token_id))
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(False)


# Split regexes that llama.cpp (and transformers' GGUF reader) know by a pre-tokenizer name.
_KNOWN_SPLITS = {
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?",
}


def _pre_tokenizer_name(pre: dict[str, Any] | None) -> str:
    """How the text is split before BPE: a plain ByteLevel step is GPT-2's split ('gpt-2'); a Split regex is
    matched to the names above by its start; anything else is written as 'default' with a warning."""
    if pre and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    steps = (pre or {}).get("pretokenizers", [])
    regex = next((s.get("pattern", {}).get("Regex", "") for s in steps if s.get("type") == "Split"), "")
    for name, start in _KNOWN_SPLITS.items():
        if regex.startswith(start):
            return name
    log.warning("GGUF export: pre-tokenizer %s is not one llama.cpp names; writing 'default'", pre)
    return "default"
