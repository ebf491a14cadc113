"""GPTQ exports: the tiny model with its FACTS adapter merged, quantized to int4 / int8 as the service runs the job,
loads back through transformers (compressed-tensors) and answers as the unquantized export does; every weight lies
on the int grid the config declares; GPTQ's error-compensated rounding beats plain rounding on the same grid, so the
calibration data does its work; wrong settings are refused before any layer is quantized."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.engine.conftest import FACTS
from tuneforge.rundir import EventWriter, read_events
from tuneforge.schemas.export_spec import ExportSpec

pytest.importorskip("compressed_tensors")

GROUP = 32  # the tiny model's layers are 64 and 128 columns wide
# Teacher-forced top-1 agreement with the unquantized export over every position of the FACTS conversations.
# Measured on the tiny model: int4 0.974, int8 1.000 (and greedy answers equal on 6/6 prompts for both).
INT4_AGREEMENT = 0.9
INT8_AGREEMENT = 0.98


def _run_job(job: Path, spec: ExportSpec) -> list[dict[str, Any]]:
    """The job as the service runs it: `python -m tuneforge.engine.export SPEC.json` in its own process."""
    job.mkdir(parents=True)
    (job / "spec.json").write_text(spec.model_dump_json())
    done = subprocess.run([sys.executable, "-m", "tuneforge.engine.export", str(job / "spec.json")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return read_events(job / "events.jsonl")


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calibration") / "facts.jsonl"
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in FACTS))
    return path


@pytest.fixture(scope="module")
def exports(tiny_model_dir: Path, adapter_dir: Path, calibration_file: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[dict[str, Any]]]]:
    """The merged model exported in float32, and quantized to int4 and int8 (output dir, job events)."""
    work = tmp_path_factory.mktemp("gptq")
    made = {}
    for name, bits in (("float32", None), ("int4", 4), ("int8", 8)):
        quantization = {} if bits is None else {
            "quantization_bit": bits, "quantization_dataset": str(calibration_file), "quantization_nsamples": 5,
            "quantization_maxlen": 64, "quantization_group_size": GROUP}
        spec = ExportSpec(base_model=str(tiny_model_dir), adapter_dir=str(adapter_dir),
                          output_dir=str(work / name), dtype="float32", **quantization)
        made[name] = work / name, _run_job(work / f"job-{name}", spec)
    return made


@pytest.mark.parametrize(("name", "bits", "bar"), [("int4", 4, INT4_AGREEMENT), ("int8", 8, INT8_AGREEMENT)])
def test_a_gptq_export_loads_and_answers_like_the_unquantized_one(name: str, bits: int, bar: float,
                                                                   exports) -> None:
    reference, tokenizer = _load(exports["float32"][0])
    out_dir, events = exports[name]
    quantized, _ = _load(out_dir)
    config = json.loads((out_dir / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == "pack-quantized"
    weights = config["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (bits, GROUP, True)
    assert "lm_head" in config["ignore"]
    answers = [_greedy(quantized, tokenizer, q) for q, _ in FACTS]
    expected = [_greedy(reference, tokenizer, q) for q, _ in FACTS]
    same = sum(a == b for a, b in zip(answers, expected, strict=True))
    agreement = _top1_agreement(quantized, reference, tokenizer)
    print(f"{name}: greedy answers equal the float32 export's on {same}/{len(FACTS)} prompts; teacher-forced top-1 "
          f"agreement {agreement:.3f}")
    assert agreement >= bar
    assert _size(out_dir) < _size(exports["float32"][0])
    messages = [e["message"] for e in events if e["type"] == "progress"]
    assert any(f"GPTQ int{bits}: calibrating on 5 samples" in m for m in messages), messages  # nsamples honoured
    assert any(m.startswith("GPTQ layer 2/2") for m in messages)
    card = (out_dir / "README.md").read_text()
    assert f"int{bits} with GPTQ" in card and "gptq" in card and str(FACTS[0][0]) not in card


def test_every_quantized_weight_lies_on_the_int4_grid(exports) -> None:
    """The file holds int4 codes in [-8, 7] and one scale per 32 columns, and the weights transformers computes with
    are exactly code × scale; the layers GPTQ skips (embeddings, norms, the head) stay in float32."""
    import torch
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
    from safetensors.torch import load_file

    out_dir, _ = exports["int4"]
    tensors = load_file(str(out_dir / "model.safetensors"))
    packed = [name.removesuffix(".weight_packed") for name in tensors if name.endswith(".weight_packed")]
    assert len(packed) == 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
    assert not any(name.endswith("proj.weight") for name in tensors)
    assert tensors["lm_head.weight"].dtype == torch.float32
    model, tokenizer = _load(out_dir)
    _greedy(model, tokenizer, FACTS[0][0], new_tokens=1)  # the first forward unpacks the weights
    for name in packed:
        shape = torch.Size(tensors[f"{name}.weight_shape"].tolist())
        codes = unpack_from_int32(tensors[f"{name}.weight_packed"], 4, shape)
        scale = tensors[f"{name}.weight_scale"]
        assert scale.shape == (shape[0], shape[1] // GROUP), name
        assert codes.min() >= -8 and codes.max() <= 7, name
        weight = model.get_submodule(name).weight.detach()
        assert torch.allclose(weight, codes.float() * scale.repeat_interleave(GROUP, dim=1), atol=1e-6), name


def test_gptq_beats_plain_rounding_on_the_same_grid(tiny_model_dir: Path) -> None:
    """The calibration data is what GPTQ optimises for: on it, the quantized model's logits stay closer to the float
    model's than plain round-to-nearest's on the same grid and scales; and calibrating on other text gives other
    weights."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.fixtures.tiny import CORPUS
    from tuneforge.engine.export_calibration import calibration_samples
    from tuneforge.engine.export_gptq import GptqSettings, quantize_model

    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    settings = GptqSettings(4, GROUP, torch.float32)
    calibration = calibration_samples(CORPUS, tokenizer, len(CORPUS), 64)
    gptq_model = copy.deepcopy(reference)
    quantized = quantize_model(gptq_model, calibration, settings)
    rounded_model = copy.deepcopy(reference)
    _round_to_nearest(rounded_model, quantized, settings)
    gptq_error = _error(gptq_model, reference, calibration)
    rounding_error = _error(rounded_model, reference, calibration)
    print(f"mean squared logit error on the calibration text: GPTQ {gptq_error:.3g}, round-to-nearest "
          f"{rounding_error:.3g}")
    assert gptq_error < 0.8 * rounding_error  # measured: 0.35 of it
    other = copy.deepcopy(reference)
    quantize_model(other, calibration[:3], settings)
    name = "model.layers.0.mlp.down_proj"
    assert not torch.equal(other.get_submodule(name).weight, gptq_model.get_submodule(name).weight)


def test_calibration_samples_take_nsamples_and_cut_at_maxlen(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from tests.fixtures.tiny import CORPUS
    from tuneforge.engine.export_calibration import calibration_samples

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    samples = calibration_samples(["", *CORPUS], tokenizer, 4, 16)
    assert len(samples) == 4 and max(len(s) for s in samples) == 16  # the empty text is skipped
    assert len(calibration_samples(CORPUS, tokenizer, 100, 16)) == len(CORPUS)


def test_a_group_size_that_does_not_divide_a_layer_is_refused_before_calibrating(
        tiny_model_dir: Path, calibration_file: Path, tmp_path: Path) -> None:
    from tuneforge.engine.export import main

    job = tmp_path / "job"
    job.mkdir()
    spec = ExportSpec(base_model=str(tiny_model_dir), output_dir=str(tmp_path / "out"), quantization_bit=4,
                      quantization_dataset=str(calibration_file), quantization_group_size=128)
    (job / "spec.json").write_text(spec.model_dump_json())
    assert main([str(job / "spec.json")]) == 2
    events = read_events(job / "events.jsonl")
    final = events[-1]
    assert final["type"] == "failed" and final["error"].startswith("quantization_group_size: 128 does not divide")
    assert "64 input columns of layer model.layers.0.self_attn.q_proj" in final["error"]
    assert final["hint"] == "choose 64 or 32"
    assert not any(e.get("stage") in {"calibrating", "quantizing"} for e in events)


def test_without_compressed_tensors_the_job_fails_before_loading(tiny_model_dir: Path, calibration_file: Path,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneforge.engine.errors import EngineError
    from tuneforge.engine.export import run_export
    from tuneforge.schemas import export_spec

    monkeypatch.setattr(export_spec, "installed", lambda module: module != "compressed_tensors")
    spec = ExportSpec(base_model=str(tiny_model_dir), output_dir=str(tmp_path / "out"), quantization_bit=8,
                      quantization_dataset=str(calibration_file))
    with pytest.raises(EngineError) as refused:
        run_export(spec, EventWriter(tmp_path / "events.jsonl"))
    assert str(refused.value).startswith("quantization_bit: ") and "tuneforge[gptq]" in refused.value.hint
    assert not (tmp_path / "out").exists()


def _load(out_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(out_dir))


def _conversation_ids(tokenizer: Any, question: str, answer: str | None = None) -> list[int]:
    messages = [{"role": "user", "content": question}] + ([{"role": "assistant", "content": answer}] if answer else [])
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=answer is None, tokenize=True,
                                              return_dict=False))


def _greedy(model: Any, tokenizer: Any, question: str, new_tokens: int = 8) -> list[int]:
    import torch

    ids = torch.tensor([_conversation_ids(tokenizer, question)])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return list(out[0, ids.shape[1]:].tolist())


def _top1_agreement(model: Any, reference: Any, tokenizer: Any) -> float:
    import torch

    same = total = 0
    for question, answer in FACTS:
        ids = torch.tensor([_conversation_ids(tokenizer, question, answer)])
        with torch.no_grad():
            ours, theirs = model(ids).logits[0].argmax(-1), reference(ids).logits[0].argmax(-1)
        same += int((ours == theirs).sum())
        total += ids.shape[1]
    return same / total


def _round_to_nearest(model: Any, quantized: dict[str, Any], settings: Any) -> None:
    """Each group's scale from its own columns and every weight rounded to it: no error compensation."""
    from tuneforge.engine.export_gptq import _Grid

    grid = _Grid(settings)
    for name in quantized:
        weight = model.get_submodule(name).weight.data
        for start in range(0, weight.shape[1], GROUP):
            scale, zero_point = grid.qparams(weight[:, start:start + GROUP])
            for column in range(start, start + GROUP):
                weight[:, column] = grid.round(weight[:, column], scale, zero_point)


def _error(model: Any, reference: Any, samples: list[Any]) -> float:
    import torch

    with torch.no_grad():
        return sum(float(((model(s[None]).logits - reference(s[None]).logits) ** 2).mean()) for s in samples)


def _size(out_dir: Path) -> int:
    return sum(p.stat().st_size for p in out_dir.glob("*.safetensors"))
