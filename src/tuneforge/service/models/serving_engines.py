"""The serving engines a deployment can run on, each as a command line the service starts and health-checks on
GET /health; all three speak OpenAI's /v1/chat/completions, so the gateway treats them alike.

- transformers: tuneforge's own server (`python -m tuneforge.serving`): CPU or GPU, adapters applied unmerged.
- vllm: vLLM's OpenAI server on GPU hosts; an adapter is served as a LoRA module under the deployment's name.
- llamacpp: llama.cpp's `llama-server` for a GGUF file (export a merged model with gguf=q4_K_M, q5_K_M, q8_0
  or f16 first).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tuneforge.modelref import ModelNotFound, locate_model
from tuneforge.schemas import ConfigProblem

Engine = Literal["transformers", "vllm", "llamacpp"]
ENGINES: tuple[str, ...] = ("transformers", "vllm", "llamacpp")
LLAMA_SERVER = "llama-server"
# The options a deployment may pass to each engine (as --flags). Address, model and name are the service's to set:
# a user option must not move the server off 127.0.0.1, swap the model, or point the engine at arbitrary files.
ENGINE_OPTIONS: dict[str, tuple[str, ...]] = {
    "transformers": ("max_batch", "template", "system"),
    "vllm": ("gpu_memory_utilization", "max_model_len", "max_num_seqs", "tensor_parallel_size", "dtype",
             "quantization", "max_lora_rank", "enforce_eager", "seed"),
    "llamacpp": ("ctx_size", "n_gpu_layers", "threads", "parallel", "batch_size", "flash_attn", "seed"),
}


@dataclass(frozen=True)
class ServedModel:
    name: str  # what clients send as `model`
    model: str  # a model folder, .gguf file, hub id or 'bundled'
    adapter: str | None = None


def options_problem(engine: str, options: dict[str, Any]) -> ConfigProblem | None:
    allowed = ENGINE_OPTIONS.get(engine, ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        return ConfigProblem(f"options.{unknown[0]}", f"not an option of engine {engine!r}; allowed: "
                                                     f"{', '.join(allowed)}")
    size = options.get("tensor_parallel_size", 1)  # decides how many GPUs the deployment holds
    if _whole_number(size) is None:
        return ConfigProblem("options.tensor_parallel_size", f"{size!r}: a whole number of GPUs, 1 or more")
    return None


def gpus_needed(engine: str, options: dict[str, Any]) -> int:
    """How many GPUs a deployment holds on a GPU host: vLLM one per tensor-parallel rank, llama.cpp none when it
    offloads no layer (n_gpu_layers 0), otherwise one."""
    if engine == "vllm":
        return _whole_number(options.get("tensor_parallel_size", 1)) or 1
    if engine == "llamacpp" and str(options.get("n_gpu_layers", "")).strip() == "0":
        return 0
    return 1


def engine_problem(engine: str, served: ServedModel) -> ConfigProblem | None:
    """Why this engine cannot serve this model on this host, or None."""
    if engine not in ENGINES:
        return ConfigProblem("engine", f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "vllm":
        if importlib.util.find_spec("vllm") is None:
            return ConfigProblem("engine", "vLLM is not installed on this host (`pip install vllm`, on a host with an "
                                           "NVIDIA GPU); engine 'transformers' works everywhere")
        if served.model == "bundled" or served.model.endswith(".gguf"):
            return ConfigProblem("engine", "vLLM serves safetensors models: export this one (exportModel) and "
                                           "register the export, or use engine 'transformers'")
    if engine == "llamacpp":
        if shutil.which(LLAMA_SERVER) is None:
            return ConfigProblem("engine", f"llama.cpp's `{LLAMA_SERVER}` is not on PATH on this host; install "
                                           "llama.cpp, or use engine 'transformers'")
        if served.adapter:
            return ConfigProblem("engine", "llama.cpp serves a single GGUF file: export the model merged with "
                                           "gguf=q4_K_M or q8_0 (exportModel), register the .gguf file, and "
                                           "deploy that")
        if not _gguf_path(served.model):
            return ConfigProblem("engine", f"llama.cpp needs a .gguf file; {served.model!r} is not one")
    return None


def serving_command(engine: str, served: ServedModel, python: str, port: int, options: dict[str, Any]) -> list[str]:
    """The argument list that starts the engine on 127.0.0.1:port (options become --flags, as each engine names
    them: e.g. {"max_batch": 8} for transformers, {"gpu_memory_utilization": 0.8} for vLLM)."""
    flags = [part for key, value in options.items() for part in (f"--{key.replace('_', '-')}", str(value))]
    address = ["--host", "127.0.0.1", "--port", str(port)]
    if engine == "vllm":
        command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", served.model, *address]
        if served.adapter:  # the base keeps its own name; clients ask for the deployment's name = the adapter
            command += ["--served-model-name", f"{served.name}-base", "--enable-lora",
                        "--lora-modules", f"{served.name}={served.adapter}"]
        else:
            command += ["--served-model-name", served.name]
        return command + flags
    if engine == "llamacpp":
        return [LLAMA_SERVER, "-m", _gguf_path(served.model) or served.model, "--alias", served.name, *address, *flags]
    command = [python, "-m", "tuneforge.serving", "--model", served.model, "--name", served.name, *address]
    if served.adapter:
        command += ["--adapter", served.adapter]
    return command + flags


def _whole_number(value: Any) -> int | None:
    """1, 2, … as a number or its digits ("2" reaches the flag the same way); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 1 else None


def _gguf_path(model: str) -> str | None:
    try:
        source = locate_model(model)
    except ModelNotFound:
        return None
    return str(Path(source.path) / source.gguf_file) if source.gguf_file else None
