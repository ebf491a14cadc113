"""Each setting below changes what the worker builds: its training arguments, its trainable model, the model's
outputs or its tokenised data. The view is made by the engine's own functions, so a setting the engine dropped
would leave it unchanged and its case would fail. The field-coverage test (tests/unit/planning) counts on this
table: a field listed here is proven honoured."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.engine.conftest import FACTS, base_config

# field → (the value to try, other settings it needs on both sides)
CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "adapter_name_or_path": ("ADAPTER", {}),
    "template": ("llama3", {}),
    "default_system": ("You are terse.", {}),
    "rope_scaling": ("linear", {"cutoff_len": 600}),  # above the tiny model's context of 512
    "finetuning_type": ("freeze", {}),
    "train_on_prompt": (True, {}),
    "mask_history": (True, {}),
    "dataset": ("EXTRA", {}),
    "eval_dataset": ("EXTRA", {"val_size": 0}),
    "cutoff_len": (24, {}),
    "max_samples": (3, {}),
    "val_size": (2, {}),
    "packing": (True, {}),
    "neat_packing": (True, {}),
    "mix_strategy": ("interleave_over", {"dataset": "BOTH"}),
    "interleave_probs": ([0.9, 0.1], {"dataset": "BOTH", "mix_strategy": "interleave_over"}),
    "learning_rate": (1e-3, {}),
    "num_train_epochs": (2.0, {"max_steps": -1}),
    "max_steps": (3, {}),
    "per_device_train_batch_size": (4, {}),
    "gradient_accumulation_steps": (2, {}),
    "max_grad_norm": (0.5, {}),
    "lr_scheduler_type": ("linear", {}),
    "lr_scheduler_kwargs": ({"power": 2.0}, {"lr_scheduler_type": "polynomial"}),
    "warmup_steps": (2, {}),
    "warmup_ratio": (0.2, {}),
    "optim": ("sgd", {}),
    "weight_decay": (0.1, {}),
    "adam_beta1": (0.8, {}),
    "adam_beta2": (0.99, {}),
    "adam_epsilon": (1e-6, {}),
    "neftune_noise_alpha": (5.0, {}),
    "bf16": (True, {}),
    "pure_bf16": (True, {}),
    "gradient_checkpointing": (True, {}),
    "seed": (11, {}),
    "data_seed": (5, {}),
    "dataloader_num_workers": (1, {}),
    "torch_compile": (True, {}),
    "ddp_find_unused_parameters": (True, {}),
    "upcast_layernorm": (True, {"bf16": True}),
    "logging_steps": (3, {}),
    "save_steps": (7, {}),
    "save_strategy": ("epoch", {}),
    "save_total_limit": (2, {}),
    "save_only_model": (True, {}),
    "lora_rank": (4, {}),
    "lora_alpha": (32, {}),
    "lora_dropout": (0.1, {}),
    "lora_target": ("q_proj,v_proj", {}),
    "additional_target": ("embed_tokens", {}),
    "use_rslora": (True, {}),
    "use_dora": (True, {}),
    "pissa_init": (True, {}),
    "pissa_iter": (4, {"pissa_init": True}),
    "create_new_adapter": (True, {"adapter_name_or_path": "ADAPTER"}),
    "freeze_trainable_layers": (1, {"finetuning_type": "freeze"}),
    "freeze_trainable_modules": ("mlp", {"finetuning_type": "freeze"}),
    "freeze_extra_modules": ("embed_tokens", {"finetuning_type": "freeze"}),
    "flash_attn": ("disabled", {}),
    "ddp_timeout": (60, {}),
    "per_device_eval_batch_size": (2, {}),
    "eval_strategy": ("steps", {"eval_steps": 2}),
    "eval_steps": (3, {"eval_strategy": "steps"}),
    "eval_on_start": (True, {}),
}


def _engine_view(config: dict[str, Any], run_root: Path) -> dict[str, Any]:
    """What the worker builds from a config, by its own functions, before the first step."""
    import torch

    from tuneforge.data.prepare import prepare_datasets
    from tuneforge.data.templates import fix_tokenizer, get_template
    from tuneforge.engine.adapters import prepare_trainable_model
    from tuneforge.engine.models import load_model, load_tokenizer, loadable, resolve_model_source
    from tuneforge.engine.precision import choose_precision
    from tuneforge.engine.training import training_arguments
    from tuneforge.rundir import RunDir
    from tuneforge.schemas import parse_training_config

    cfg = parse_training_config(config)
    torch.manual_seed(cfg.seed)
    precision = choose_precision(cfg)
    source = loadable(resolve_model_source(cfg.model_name_or_path))
    tokenizer = load_tokenizer(source)
    template = get_template(cfg.template, tokenizer)
    fix_tokenizer(tokenizer, template)
    data = prepare_datasets(cfg, tokenizer, template)
    model = prepare_trainable_model(load_model(cfg, source, precision), cfg)
    args = training_arguments(cfg, RunDir(run_root / "run"), precision, has_eval=bool(data.eval))
    ids = torch.arange(3, 3 + 160).remainder(500).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    trainable = sorted((n, tuple(p.shape), str(p.dtype)) for n, p in model.named_parameters() if p.requires_grad)
    weights = hashlib.sha256()
    for _, tensor in sorted(model.state_dict().items()):
        weights.update(tensor.detach().float().cpu().numpy().tobytes())
    peft = getattr(model, "peft_config", {})
    settings = {k: v for k, v in args.to_dict().items() if k not in ("output_dir", "logging_dir")}
    return {
        "args": json.dumps(settings, sort_keys=True, default=str),
        "trainable": trainable,
        "peft": json.dumps({k: c.to_dict() for k, c in peft.items()}, sort_keys=True, default=str),
        "weights": weights.hexdigest(),
        "logits": [round(float(x), 4) for x in logits[0, -40:].sum(-1)],
        "data": _data_digest(data),
        "dtypes": sorted((n, str(p.dtype)) for n, p in model.named_parameters()),
    }


def _data_digest(data: Any) -> str:
    rows = [(list(s.input_ids), list(s.labels), list(getattr(s, "position_ids", []))) for s in data.train]
    rows_eval = [(list(s.input_ids), list(s.labels)) for s in data.eval]
    return hashlib.sha256(json.dumps([rows, rows_eval]).encode()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, str]:
    """Two small alpaca files and a LoRA adapter trained on none of them (for adapter_name_or_path)."""
    root = tmp_path_factory.mktemp("honoured")
    main, extra = root / "facts.jsonl", root / "extra.jsonl"
    turns = [{"instruction": q, "input": "", "output": a,
              "history": [["Say hi.", "Hi there, friend."]]} for q, a in FACTS * 2]
    main.write_text("\n".join(json.dumps(t) for t in turns) + "\n", encoding="utf-8")
    extra.write_text("\n".join(json.dumps({"instruction": f"Count to {n}.", "input": "", "output": " ".join(
        str(i) for i in range(n))}) for n in range(3, 12)) + "\n", encoding="utf-8")
    adapter = root / "adapter"
    _save_adapter(tiny_model_dir, adapter)
    return {"main": str(main), "extra": str(extra), "adapter": str(adapter)}


def _save_adapter(model_dir: Path, out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(out)


def _config(tiny_model_dir: Path, files: dict[str, str], tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config = base_config(tiny_model_dir, Path(files["main"]), tmp_path / "out", cutoff_len=64, val_size=0.25,
                         max_steps=4)
    replacements = {"ADAPTER": files["adapter"], "EXTRA": files["extra"], "BOTH": [files["main"], files["extra"]]}
    for key, value in overrides.items():
        config[key] = replacements.get(value, value) if isinstance(value, str) else value
    return config


@pytest.mark.parametrize("field", list(CASES))
def test_the_setting_changes_what_the_worker_builds(field, tiny_model_dir, files, tmp_path):
    value, needs = CASES[field]
    before = _engine_view(_config(tiny_model_dir, files, tmp_path, **needs), tmp_path / "a")
    after = _engine_view(_config(tiny_model_dir, files, tmp_path, **{**needs, field: value}), tmp_path / "b")
    changed = [key for key in before if before[key] != after[key]]
    assert changed, f"{field}={value!r} changed nothing the worker builds"
