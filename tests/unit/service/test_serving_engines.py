"""Each serving engine's command line, and a clear refusal when the host or the model cannot run it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tuneforge.service.models.serving_engines import ServedModel, engine_problem, options_problem, serving_command


def test_transformers_serves_an_adapter_unmerged_with_options_as_flags() -> None:
    command = serving_command("transformers", ServedModel("forge", "bundled", "/runs/forge"), "python", 9000,
                              {"max_batch": 4})
    assert command == ["python", "-m", "tuneforge.serving", "--model", "bundled", "--name", "forge", "--host",
                       "127.0.0.1", "--port", "9000", "--adapter", "/runs/forge", "--max-batch", "4"]


def test_vllm_serves_the_adapter_under_the_deployment_name() -> None:
    command = serving_command("vllm", ServedModel("forge", "/models/base", "/runs/forge"), "python", 9000,
                              {"gpu_memory_utilization": 0.8})
    assert command[:3] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    assert "--lora-modules" in command and "forge=/runs/forge" in command
    assert command[command.index("--served-model-name") + 1] == "forge-base"
    assert command[-2:] == ["--gpu-memory-utilization", "0.8"]


def test_llamacpp_serves_the_gguf_file_under_the_alias(tmp_path: Path) -> None:
    gguf = tmp_path / "forge.q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    command = serving_command("llamacpp", ServedModel("forge", str(gguf)), "python", 9000, {})
    assert command[:3] == ["llama-server", "-m", str(gguf)] and command[3:5] == ["--alias", "forge"]


@pytest.mark.skipif(shutil.which("llama-server") is not None, reason="llama.cpp is installed here")
def test_engines_this_host_lacks_are_refused_with_what_to_do(tmp_path: Path) -> None:
    vllm = engine_problem("vllm", ServedModel("forge", str(tmp_path)))
    assert vllm is not None and vllm.field == "engine" and "pip install vllm" in vllm.message
    llama = engine_problem("llamacpp", ServedModel("forge", str(tmp_path)))
    assert llama is not None and "llama-server" in llama.message
    unknown = engine_problem("tgi", ServedModel("forge", "bundled"))
    assert unknown is not None and "transformers" in unknown.message
    assert engine_problem("transformers", ServedModel("forge", "bundled")) is None


def test_options_that_would_move_the_server_or_swap_the_model_are_refused() -> None:
    assert options_problem("transformers", {"max_batch": 4, "system": "You are Forge."}) is None
    for key in ("host", "port", "model", "adapter", "name"):
        problem = options_problem("transformers", {key: "x"})
        assert problem is not None and problem.field == f"options.{key}" and "max_batch" in problem.message
    assert options_problem("vllm", {"download_dir": "/etc"}) is not None
