"""Model export, run as a background job: `python -m tuneforge.engine.export SPEC.json`.

Merges a LoRA adapter into its base (in float32, then cast), optionally quantizes the weights with GPTQ
(export_gptq), saves sharded safetensors with the tokenizer, chat template, generation config and a model card,
optionally a GGUF file (export_gguf; the K-quants through llama.cpp's quantizer), and pushes to the Hugging Face Hub.
Writes events.jsonl and export.log next to SPEC.json: started,
progress (percentage, message), then one final completed (output_dir, files, sizes) or failed (error, hint).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneforge.engine.background_job import run_job
from tuneforge.engine.errors import EngineError
from tuneforge.engine.export_gguf import LLAMA_CPP_FTYPES, gguf_file_name, quantize_gguf, write_gguf
from tuneforge.rundir import EventWriter
from tuneforge.schemas.events import EventType
from tuneforge.schemas.export_spec import (
    GGUF_EXTRA_INSTALL,
    GPTQ_EXTRA_INSTALL,
    ExportSpec,
    gguf_problem,
    gptq_problem,
)

log = logging.getLogger("tuneforge.export")

GB = 10**9  # as transformers reads "5GB" (LLaMA-Factory's export_size)
HEADER_ALLOWANCE = 16 * 1024  # a safetensors file is its tensors plus a JSON header: keep room for it
DTYPES = {"float32", "float16", "bfloat16"}


@dataclass
class ExportResult:
    output_dir: Path
    files: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)


class ExportProgress:
    """progress events with an overall percentage; each stage owns a slice of 0-100."""

    def __init__(self, events: Any) -> None:
        self.events = events

    def report(self, percentage: float, message: str, stage: str) -> None:
        log.info("%5.1f%% %s", percentage, message)
        self.events.emit(EventType.PROGRESS, stage=stage, percentage=round(percentage, 1), message=message)

    def within(self, start: float, end: float, stage: str) -> Callable[[int, int, str], None]:
        return lambda k, n, what: self.report(start + (end - start) * k / n, f"{stage} {k}/{n}: {what}", stage)


def run_export(spec: ExportSpec, events: Any, hub_api: Any = None) -> ExportResult:
    """The whole export; `hub_api` stands in for huggingface_hub.HfApi (tests pass a fake)."""
    progress = ExportProgress(events)
    if problem := gguf_problem(spec.gguf):  # before loading: a missing quantizer would waste the whole merge
        raise EngineError(f"{problem.field}: {problem.message}", hint=GGUF_EXTRA_INSTALL)
    if problem := gptq_problem(spec.quantization_bit):
        raise EngineError(f"{problem.field}: {problem.message}", hint=GPTQ_EXTRA_INSTALL)
    output_dir = _prepare_output_dir(Path(spec.output_dir))
    progress.report(0, f"loading {spec.base_model}", "loading")
    model, tokenizer, base_dtype = load_for_export(spec)
    if spec.merges:
        progress.report(25, f"merging {spec.adapter_dir} into the base weights", "merging")
        model = model.merge_and_unload()
    target = _target_dtype(spec.dtype, base_dtype)
    if spec.quantization_bit:
        quantize_and_save(model, tokenizer, output_dir, spec, target, progress)
    else:
        model = model.to(target)
        progress.report(30, f"saving to {output_dir}", "saving")
        save_model_dir(model, tokenizer, output_dir, spec)
    shards = _weight_files(output_dir)
    saved_from = 55 if spec.quantization_bit else 30  # where saving started: progress never goes back
    for k, name in enumerate(shards, start=1):
        progress.report(saved_from + (60 - saved_from) * k / len(shards), f"saved shard {k}/{len(shards)}: {name}",
                        "saving")
    if spec.gguf:
        export_gguf(model, tokenizer, output_dir, spec.gguf, progress)
    (output_dir / "README.md").write_text(model_card(spec, output_dir), encoding="utf-8")
    if spec.hub_repo_id:
        progress.report(90, f"uploading to https://huggingface.co/{spec.hub_repo_id}", "uploading")
        push_to_hub(output_dir, spec, hub_api)
    files = sorted(p.name for p in output_dir.iterdir() if p.is_file())
    return ExportResult(output_dir, files, {name: (output_dir / name).stat().st_size for name in files})


def quantize_and_save(model: Any, tokenizer: Any, output_dir: Path, spec: ExportSpec, dtype: Any,
                      progress: ExportProgress) -> None:
    """GPTQ at 25-55% (the float32 weights, calibrated on the spec's dataset), then the packed model is saved."""
    import torch

    from tuneforge.engine import export_gptq
    from tuneforge.engine.export_calibration import calibration_samples, calibration_texts

    bits, nsamples, maxlen = spec.quantization_bit, spec.quantization_nsamples, spec.quantization_maxlen
    assert bits is not None and spec.quantization_dataset is not None  # the spec's validator saw to both
    export_gptq.check_quantizable(model, spec.quantization_group_size)
    progress.report(25, f"reading calibration samples from {spec.quantization_dataset}", "calibrating")
    texts, reading = calibration_texts(spec.quantization_dataset, spec.quantization_dataset_dir, tokenizer, nsamples)
    samples = calibration_samples(texts, tokenizer, nsamples, maxlen)
    if not samples:
        raise EngineError(f"quantization_dataset: {spec.quantization_dataset} holds no text to calibrate on",
                          hint="choose a dataset with conversations or documents like the model's real inputs")
    tokens = sum(int(s.numel()) for s in samples)
    progress.report(27, f"GPTQ int{bits}: calibrating on {len(samples)} samples ({tokens} tokens, at most "
                        f"{maxlen} each; {reading})", "quantizing")
    settings = export_gptq.GptqSettings(bits, spec.quantization_group_size, dtype)
    try:
        quantized = export_gptq.quantize_model(model, samples, settings, progress.within(27, 55, "GPTQ layer"))
    except torch.OutOfMemoryError as exc:
        raise EngineError(f"quantization_nsamples: the calibration activations ({len(samples)} samples, {tokens} "
                          "tokens) do not fit in memory", hint="lower quantization_nsamples or "
                                                               "quantization_maxlen") from exc
    progress.report(55, f"packing int{bits} weights and saving to {output_dir}", "saving")
    export_gptq.save_compressed(model.to(dtype), quantized, settings,
                                lambda packed: save_model_dir(packed, tokenizer, output_dir, spec), output_dir)


def export_gguf(model: Any, tokenizer: Any, output_dir: Path, gguf_type: str, progress: ExportProgress) -> Path:
    """The GGUF file, at 60-90%: f16 / q8_0 straight from the weights; a K-quant as a temporary f16 file in the
    output dir (same disk, no copy) that llama.cpp quantizes, as one progress step, and that is then removed."""
    path = output_dir / gguf_file_name(output_dir.name, gguf_type)
    if gguf_type not in LLAMA_CPP_FTYPES:
        return write_gguf(model, tokenizer, path, gguf_type, name=output_dir.name,
                          progress=progress.within(60, 90, "gguf tensors"))
    f16 = output_dir / f".{path.stem}.f16-tmp.gguf"
    try:
        write_gguf(model, tokenizer, f16, "f16", name=output_dir.name, progress=progress.within(60, 75, "gguf tensors"))
        progress.report(75, f"quantizing to {gguf_type} with llama.cpp", "gguf quantize")
        quantize_gguf(f16, path, gguf_type)
        progress.report(90, f"quantized to {gguf_type}: {path.name}", "gguf quantize")
        return path
    finally:
        f16.unlink(missing_ok=True)


def load_for_export(spec: ExportSpec) -> tuple[Any, Any, str]:
    """Base in float32 (merging in half precision loses the adapter's small updates), the adapter on top, and
    the dtype the base was saved in (what dtype: auto exports)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tuneforge.engine.models import loadable, resolve_model_source

    source = loadable(resolve_model_source(spec.base_model))
    adapter = Path(spec.adapter_dir) if spec.adapter_dir else None
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        raise EngineError(f"adapter_dir: {adapter} is not an adapter directory (no adapter_config.json)",
                          hint="give the output_dir of a LoRA run, or leave adapter_dir empty to export the base")
    has_tokenizer = adapter is not None and (adapter / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter) if has_tokenizer else source.path)
    device_map = "auto" if spec.device == "auto" and torch.cuda.is_available() else None
    base_dtype = _config_dtype(AutoConfig.from_pretrained(source.path))
    model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.float32, device_map=device_map)
    if adapter is None:
        return model, tokenizer, base_dtype
    from peft import PeftModel

    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    return PeftModel.from_pretrained(model, str(adapter)), tokenizer, base_dtype


def save_model_dir(model: Any, tokenizer: Any, output_dir: Path, spec: ExportSpec) -> None:
    """Weights in shards of at most max_shard_size_gb, tokenizer (with the chat template), generation config."""
    limit = int(spec.max_shard_size_gb * GB)
    _check_tensors_fit(model, limit)
    if spec.adapter_dir and not spec.merges:
        model.save_pretrained(str(output_dir), safe_serialization=spec.safe_serialization)
    else:
        model.save_pretrained(str(output_dir), max_shard_size=max(limit - HEADER_ALLOWANCE, limit // 2))
        if not spec.safe_serialization:
            _safetensors_to_bin(output_dir)
    tokenizer.save_pretrained(str(output_dir))
    generation = Path(spec.adapter_dir or "", "generation_config.json")
    if spec.adapter_dir and generation.is_file():  # the stop ids training chose (outputs.stop_token_ids)
        shutil.copyfile(generation, output_dir / "generation_config.json")
    for name in ("training_args.yaml", "all_results.json"):
        if spec.adapter_dir and Path(spec.adapter_dir, name).is_file():
            shutil.copyfile(Path(spec.adapter_dir, name), output_dir / name)


def _safetensors_to_bin(output_dir: Path) -> None:
    """transformers 5 saves safetensors only; safe_serialization: false asks for PyTorch .bin shards."""
    import torch
    from safetensors.torch import load_file

    renames = {}
    for shard in sorted(output_dir.glob("model*.safetensors")):
        target = "pytorch_" + shard.name.removesuffix(".safetensors") + ".bin"
        torch.save(load_file(str(shard)), output_dir / target)
        shard.unlink()
        renames[shard.name] = target
    index_file = output_dir / "model.safetensors.index.json"
    if index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
        index["weight_map"] = {k: renames.get(v, v) for k, v in index["weight_map"].items()}
        (output_dir / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
        index_file.unlink()


def _check_tensors_fit(model: Any, limit: int) -> None:
    """A tensor bigger than the limit would get a shard of its own that breaks it: refuse before writing."""
    for name, tensor in model.state_dict().items():
        size = tensor.numel() * tensor.element_size()
        if size + HEADER_ALLOWANCE > limit:
            raise EngineError(
                f"max_shard_size_gb: the tensor {name} alone is {size / GB:.6g} GB, over the limit of "
                f"{limit / GB:.6g} GB",
                hint=f"set max_shard_size_gb to at least {(size + HEADER_ALLOWANCE) / GB:.6g}",
            )


def model_card(spec: ExportSpec, output_dir: Path) -> str:
    """Hub-style README: front matter, lineage, final metrics, files, how to load."""
    metrics_file = output_dir / "all_results.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    merged = bool(spec.adapter_dir) and spec.merges
    front = {"base_model": str(spec.lineage.get("base_model", spec.base_model)),
             "library_name": "peft" if spec.adapter_dir and not merged else "transformers",
             "tags": ["tuneforge", *(["merged-lora"] if merged else []), *(["gguf"] if spec.gguf else []),
                      *(["gptq", "compressed-tensors"] if spec.quantization_bit else [])]}
    lineage = {"base_model": spec.base_model, **({"adapter": spec.adapter_dir} if spec.adapter_dir else {}),
               **spec.lineage}
    what = f"`{spec.base_model}` with the LoRA adapter merged into its weights" if merged else f"`{spec.base_model}`"
    files = "\n".join(f"- `{p.name}`" for p in sorted(output_dir.iterdir()) if p.is_file())
    gguf_line = f"\nllama.cpp: `llama-cli -m {gguf_file_name(output_dir.name, spec.gguf)}`\n" if spec.gguf else ""
    return (
        f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n# {output_dir.name}\n\n"
        f"{what}, exported by tuneforge ({spec.dtype}, shards of at most {spec.max_shard_size_gb:g} GB).\n\n"
        f"{_quantization_note(spec)}"
        f"## Lineage\n\n| field | value |\n|---|---|\n{_rows(lineage)}\n\n"
        f"## Final metrics\n\n| metric | value |\n|---|---|\n{_rows(metrics) or '| (none recorded) | |'}\n\n"
        f"## Files\n\n{files}\n- `README.md`\n\n## Use\n\n```python\nfrom transformers import "
        f"AutoModelForCausalLM, AutoTokenizer\nmodel = AutoModelForCausalLM.from_pretrained(\"{output_dir.name}\")\n"
        f"tokenizer = AutoTokenizer.from_pretrained(\"{output_dir.name}\")\n```\n{gguf_line}"
    )


def _quantization_note(spec: ExportSpec) -> str:
    if not spec.quantization_bit:
        return ""
    groups = ("one scale per output row" if spec.quantization_group_size == -1
              else f"one scale per {spec.quantization_group_size} input columns")
    return (f"The decoder layers' linear weights are quantized to int{spec.quantization_bit} with GPTQ ({groups}), "
            f"calibrated on up to {spec.quantization_nsamples} samples of `{spec.quantization_dataset}` of at most "
            f"{spec.quantization_maxlen} tokens each, and saved in the compressed-tensors format: vLLM serves it as "
            "it is; transformers loads it with `pip install compressed-tensors`.\n\n")


def push_to_hub(output_dir: Path, spec: ExportSpec, hub_api: Any = None) -> str:
    """Create (or reuse) the repo and upload the folder; the token comes from the env variable the spec names."""
    token = os.environ.get(spec.hub_token_env) or None
    if hub_api is None:
        from huggingface_hub import HfApi

        hub_api = HfApi(token=token)
    try:
        hub_api.create_repo(spec.hub_repo_id, private=spec.hub_private, exist_ok=True, repo_type="model")
        commit = hub_api.upload_folder(repo_id=spec.hub_repo_id, folder_path=str(output_dir), repo_type="model",
                                       commit_message=f"tuneforge export of {spec.base_model}")
    except Exception as exc:  # network, auth, name taken: all end the job with what to do
        raise EngineError(f"hub_repo_id: uploading to {spec.hub_repo_id} failed: {type(exc).__name__}: {exc}",
                          hint=f"check the repo id and that ${spec.hub_token_env} holds a token with write "
                               "access; the export itself is complete in the output dir") from exc
    return str(getattr(commit, "commit_url", commit))


def _prepare_output_dir(path: Path) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise EngineError(f"output_dir: {path} exists and is not empty",
                          hint="choose a new folder: old shards mixed with new ones would load the wrong weights")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _config_dtype(config: Any) -> str:
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    name = str(dtype).removeprefix("torch.") if dtype is not None else "float32"
    return name if name in DTYPES else "float32"


def _target_dtype(asked: str, base_dtype: str) -> Any:
    import torch

    return getattr(torch, base_dtype if asked == "auto" else asked)


def _weight_files(output_dir: Path) -> list[str]:
    return sorted(p.name for p in output_dir.iterdir() if p.suffix in (".safetensors", ".bin"))


def _rows(values: dict[str, Any]) -> str:
    return "\n".join(f"| {k} | {f'{v:.4g}' if isinstance(v, float) else v} |" for k, v in values.items())


def main(argv: list[str] | None = None) -> int:
    return run_job(argv, "tuneforge.engine.export", "export.log", "export", _export)


def _export(spec_file: Path, events: EventWriter) -> None:
    spec = ExportSpec.model_validate_json(spec_file.read_text(encoding="utf-8"))
    events.emit(EventType.STARTED, pid=os.getpid(), base_model=spec.base_model, output_dir=spec.output_dir)
    result = run_export(spec, events)
    events.emit(EventType.COMPLETED, output_dir=str(result.output_dir), files=result.files, sizes=result.sizes)


if __name__ == "__main__":
    sys.exit(main())
