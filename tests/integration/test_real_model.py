"""Real-model checks on the bundled SmolLM2-135M-Instruct (slow: a few minutes on two CPU cores)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_bundled_model_answers_and_stops():
    from tuneforge.engine.bundled import bundled_model_dir
    from tuneforge.engine.generate import GenerationSettings, load_chat_model

    model_dir = bundled_model_dir()
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == "<|im_end|>"  # transformers' GGUF conversion says <|im_start|>
    chat = load_chat_model("bundled", template="smollm2")
    ids = chat.prompt_ids([{"role": "user", "content": "Say hello in one short sentence."}])
    import torch

    out = chat.model.generate(torch.tensor([ids]), max_new_tokens=120, do_sample=False,
                              eos_token_id=chat.stop_ids, pad_token_id=chat.tokenizer.pad_token_id)
    new = out[0, len(ids):].tolist()
    assert len(new) < 120 and new[-1] in chat.stop_ids, chat.tokenizer.decode(new)
    assert chat.chat([{"role": "user", "content": "What is 2 + 2?"}], GenerationSettings(max_new_tokens=30))


def test_demo_teaches_the_new_identity(tmp_path: Path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "tuneforge.cli.main", "demo", "--output-dir", str(out)],
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    from tuneforge.engine.generate import GenerationSettings, load_chat_model

    question = [{"role": "user", "content": "Who are you?"}]
    settings = GenerationSettings(max_new_tokens=40)
    after = load_chat_model("bundled", adapter=str(out)).chat(question, settings)
    before = load_chat_model("bundled", template="smollm2", system="You are a helpful AI assistant.").chat(
        question, settings)
    assert "Forge" in after and "Forge" not in before, (before, after)
    evals = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    losses = [e["eval_loss"] for e in evals if e["type"] == "eval"]
    assert len(losses) >= 2 and losses[-1] < losses[0]
