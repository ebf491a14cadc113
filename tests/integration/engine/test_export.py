"""Export: merged weights equal base+adapter, shards honour the limit, GGUF (f16 / q8_0) loads back through
transformers with the same greedy answers, hub push up to the network call, the job's events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tuneforge.rundir import EventWriter, read_events
from tuneforge.schemas.export_spec import ExportSpec

PROMPTS = ["What is the code word?", "Who are you?", "What is the capital of France?",
           "Translate to French: good morning.", "Write a haiku about the sea."]
SHARD_GB = 0.0002  # 200 kB: the tiny model (~0.5 MB in fp32) needs several shards


@pytest.fixture(scope="module")
def merged_export(tiny_model_dir: Path, adapter_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The job as the service runs it: `python -m tuneforge.engine.export SPEC.json` in its own process."""
    job = tmp_path_factory.mktemp("export-job")
    spec = ExportSpec(base_model=str(tiny_model_dir), adapter_dir=str(adapter_dir), output_dir=str(job / "merged"),
                      dtype="float32", max_shard_size_gb=SHARD_GB,
                      lineage={"task": "task-42", "checkpoint_step": 12, "dataset": "facts@v1"})
    (job / "spec.json").write_text(spec.model_dump_json())
    done = subprocess.run([sys.executable, "-m", "tuneforge.engine.export", str(job / "spec.json")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return job / "merged", read_events(job / "events.jsonl")


def _logits(model: Any, tokenizer: Any) -> Any:
    import torch

    ids = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**ids).logits


def _greedy(model: Any, tokenizer: Any, new_tokens: int = 16) -> list[list[int]]:
    import torch

    answers = []
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                          add_generation_prompt=True, tokenize=True,
                                                          return_dict=False)])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)
        answers.append(out[0, ids.shape[1]:].tolist())
    return answers


def test_merged_logits_equal_base_plus_adapter(merged_export, tiny_model_dir: Path, adapter_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir, _ = merged_export
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, adapter_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    diff = (_logits(merged, tokenizer) - _logits(reference, tokenizer)).abs().max().item()
    adapter_effect = (_logits(plain, tokenizer) - _logits(reference, tokenizer)).abs().max().item()
    print(f"max |logit diff| merged vs base+adapter: {diff:.2e} (adapter moves logits by {adapter_effect:.2e})")
    assert diff < 1e-4
    assert adapter_effect > 1e-2  # the adapter really changes the model, so the check means something


def test_every_shard_within_max_shard_size(merged_export) -> None:
    out_dir, _ = merged_export
    shards = sorted(out_dir.glob("*.safetensors"))
    sizes = {p.name: p.stat().st_size for p in shards}
    print("shards:", sizes)
    assert len(shards) > 1
    assert all(size <= SHARD_GB * 10**9 for size in sizes.values())
    index = json.loads((out_dir / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(sizes)


def test_export_carries_template_card_and_events(merged_export) -> None:
    out_dir, events = merged_export
    assert "<|im_start|>" in json.loads((out_dir / "tokenizer_config.json").read_text()).get("chat_template", "") \
        or (out_dir / "chat_template.jinja").is_file()
    card = (out_dir / "README.md").read_text()
    assert "task-42" in card and "facts@v1" in card and "train_loss" in card
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "completed" and types.count("completed") == 1
    messages = [e["message"] for e in events if e["type"] == "progress"]
    assert any("merging" in m for m in messages) and any("saved shard 2/" in m for m in messages)
    percentages = [e["percentage"] for e in events if e["type"] == "progress"]
    assert percentages == sorted(percentages)
    final = events[-1]
    assert final["output_dir"] == str(out_dir.resolve()) and "README.md" in final["files"]
    assert final["sizes"]["config.json"] == (out_dir / "config.json").stat().st_size


@pytest.mark.parametrize("gguf_type", ["f16", "q8_0"])
def test_gguf_loads_back_with_the_same_greedy_answers(gguf_type: str, tiny_model_dir: Path, adapter_dir: Path,
                                                      tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = tmp_path / "tiny-gguf"
    spec = ExportSpec(base_model=str(tiny_model_dir), adapter_dir=str(adapter_dir), output_dir=str(out_dir),
                      dtype="float32", gguf=gguf_type)
    _run(spec, tmp_path)
    name = f"tiny-gguf-{gguf_type}.gguf"
    source = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    alone = _alone(out_dir / name)
    loaded = AutoModelForCausalLM.from_pretrained(alone, gguf_file=name, dtype=torch.float32).eval()
    gguf_tokenizer = AutoTokenizer.from_pretrained(alone, gguf_file=name)
    for prompt in PROMPTS:
        assert gguf_tokenizer.encode(prompt) == tokenizer.encode(prompt)
    assert gguf_tokenizer.eos_token == "<|im_end|>" and gguf_tokenizer.chat_template == tokenizer.chat_template
    # Every weight comes back within one quantisation step of the source (a Q/K permutation gone wrong would not).
    step = 1 / 2048 if gguf_type == "f16" else 1 / 127
    loaded_weights = loaded.state_dict()
    for name, weight in source.state_dict().items():
        assert (loaded_weights[name] - weight).abs().max() <= weight.abs().max() * step, name
    expected = _logits(source, tokenizer)
    diff = (_logits(loaded, tokenizer) - expected).abs().max().item()
    print(f"{gguf_type}: max |logit diff| GGUF vs source: {diff:.2e} (largest logit {expected.abs().max():.2f})")
    answers, expected_answers = _greedy(loaded, tokenizer), _greedy(source, tokenizer)
    same = sum(a == b for a, b in zip(answers, expected_answers, strict=True))
    print(f"{gguf_type}: greedy answers equal on {same}/{len(PROMPTS)} prompts")
    assert answers == expected_answers


def test_qwen2_gguf_keeps_biases_and_answers(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from tests.fixtures.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n" \
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    torch.manual_seed(5)
    model = Qwen2ForCausalLM(config)
    for layer in model.model.layers:  # non-zero q/k/v biases, so a dropped bias would show
        torch.nn.init.normal_(layer.self_attn.q_proj.bias, std=0.5)
        torch.nn.init.normal_(layer.self_attn.k_proj.bias, std=0.5)
    model.save_pretrained(tmp_path / "qwen")
    tokenizer.save_pretrained(tmp_path / "qwen")
    out_dir = tmp_path / "qwen-out"
    _run(ExportSpec(base_model=str(tmp_path / "qwen"), output_dir=str(out_dir), gguf="f16"), tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(_alone(out_dir / "qwen-out-f16.gguf"), gguf_file="qwen-out-f16.gguf",
                                                  dtype=torch.float32)
    assert loaded.config.model_type == "qwen2" and loaded.config.tie_word_embeddings
    assert _greedy(loaded.eval(), tokenizer) == _greedy(model.eval(), tokenizer)


def test_hub_push_creates_the_repo_and_uploads_the_export(tiny_model_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeHub:
        def __init__(self) -> None:
            self.calls: list[tuple[str, dict]] = []

        def create_repo(self, repo_id: str, **kwargs: Any) -> None:
            self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

        def upload_folder(self, **kwargs: Any) -> str:
            uploaded = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
            self.calls.append(("upload_folder", {**kwargs, "files": uploaded}))
            return "https://huggingface.co/me/tiny/commit/abc"

    hub = FakeHub()
    spec = ExportSpec(base_model=str(tiny_model_dir), output_dir=str(tmp_path / "out"), hub_repo_id="me/tiny")
    events = _run(spec, tmp_path, hub_api=hub)
    (_, create), (_, upload) = hub.calls
    assert create == {"repo_id": "me/tiny", "private": True, "exist_ok": True, "repo_type": "model"}
    assert upload["repo_id"] == "me/tiny" and {"README.md", "config.json", "model.safetensors"} <= set(upload["files"])
    assert any(e.get("stage") == "uploading" for e in events)


def test_pytorch_bin_when_safetensors_is_off(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = tmp_path / "bin"
    _run(ExportSpec(base_model=str(tiny_model_dir), output_dir=str(out_dir), safe_serialization=False,
                    max_shard_size_gb=SHARD_GB), tmp_path)
    assert not list(out_dir.glob("*.safetensors")) and len(list(out_dir.glob("pytorch_model-*.bin"))) > 1
    loaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert torch.equal(loaded.lm_head.weight, original.lm_head.weight)


def test_bad_exports_fail_with_the_field_and_what_to_do(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tuneforge.engine.export import main

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "old.safetensors").write_text("x")
    cases = {
        "output_dir": {"base_model": str(tiny_model_dir), "output_dir": str(tmp_path / "taken")},
        "max_shard_size_gb": {"base_model": str(tiny_model_dir), "output_dir": str(tmp_path / "o1"),
                              "max_shard_size_gb": 0.00001},
        "gguf": {"base_model": str(tiny_model_dir), "adapter_dir": str(tmp_path), "merge": False,
                 "output_dir": str(tmp_path / "o2"), "gguf": "q8_0"},
        "adapter_dir": {"base_model": str(tiny_model_dir), "adapter_dir": str(tmp_path),
                        "output_dir": str(tmp_path / "o3")},
    }
    for field, spec in cases.items():
        job = tmp_path / f"job-{field}"
        job.mkdir()
        (job / "spec.json").write_text(json.dumps(spec))
        assert main([str(job / "spec.json")]) == 2
        final = read_events(job / "events.jsonl")[-1]
        assert final["type"] == "failed" and field in final["error"] and final["hint"], final


@pytest.mark.slow
def test_bundled_smollm2_q8_0_gguf_same_greedy_answers(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bundled = Path.home() / ".tuneforge" / "models" / "smollm2-135m-instruct"
    if not (bundled / "config.json").is_file():
        pytest.skip(f"{bundled} does not exist (run `tuneforge demo` once to convert the bundled model)")
    out_dir = tmp_path / "smol"
    _run(ExportSpec(base_model=str(bundled), output_dir=str(out_dir), dtype="float32", gguf="q8_0"), tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(bundled)
    source = AutoModelForCausalLM.from_pretrained(bundled, dtype=torch.float32).eval()
    alone = _alone(out_dir / "smol-q8_0.gguf")
    loaded = AutoModelForCausalLM.from_pretrained(alone, gguf_file="smol-q8_0.gguf", dtype=torch.float32).eval()
    gguf_tokenizer = AutoTokenizer.from_pretrained(alone, gguf_file="smol-q8_0.gguf")
    assert gguf_tokenizer.encode("Who are you?") == tokenizer.encode("Who are you?")
    assert _greedy(loaded, tokenizer, 24) == _greedy(source, tokenizer, 24)


def _alone(gguf_path: Path) -> Path:
    """The GGUF file in a folder of its own, so loading it cannot pick up the config.json or tokenizer beside it."""
    folder = gguf_path.parent.parent / f"{gguf_path.stem}-alone"
    folder.mkdir()
    os.link(gguf_path, folder / gguf_path.name)
    return folder


def _run(spec: ExportSpec, tmp_path: Path, hub_api: Any = None) -> list[dict]:
    from tuneforge.engine.export import run_export

    events_file = tmp_path / f"events-{Path(spec.output_dir).name}.jsonl"
    run_export(spec, EventWriter(events_file), hub_api=hub_api)
    return read_events(events_file)
