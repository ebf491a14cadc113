"""What trains: LoRA family (LoRA, LoRA+, rsLoRA, DoRA, PiSSA) through peft, freeze (last/first n layers) or full."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from tuneforge.engine.errors import EngineError

log = logging.getLogger(__name__)


def prepare_trainable_model(model: Any, cfg: Any, *, is_trainable: bool = True) -> Any:
    """Apply the fine-tuning method; returns the model to train (a PeftModel for LoRA)."""
    if cfg.finetuning_type == "lora":
        model = _apply_lora(model, cfg, is_trainable)
    else:
        if cfg.adapter_name_or_path:
            model = merge_adapters(model, cfg.adapter_name_or_path)
        if cfg.finetuning_type == "freeze":
            _apply_freeze(model, cfg)
        else:
            for param in model.parameters():
                param.requires_grad_(True)
    if cfg.quantization_bit is None and not cfg.pure_bf16:
        _upcast_trainable(model)
    if cfg.upcast_layernorm:
        upcast_norms(model)
    return model


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def merge_adapters(model: Any, adapter_paths: str | list[str]) -> Any:
    from peft import PeftModel

    for path in _as_list(adapter_paths):
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    return model


def linear_module_names(model: Any) -> list[str]:
    """Short names of every linear layer except the output head: what `lora_target: all` means."""
    import torch

    output = model.get_output_embeddings()
    names = set()
    for name, module in model.named_modules():
        head = "lm_head" in name or name.rsplit(".", 1)[-1] == "score"  # the LM head, or a reward model's
        if isinstance(module, torch.nn.Linear) and module is not output and not head:
            names.add(name.split(".")[-1])
    return sorted(names)


def _apply_lora(model: Any, cfg: Any, is_trainable: bool) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model

    adapters = _as_list(cfg.adapter_name_or_path)
    if adapters:
        # Earlier adapters are merged; the last one is trained further unless a new adapter is asked for.
        model = merge_adapters(model, adapters[:-1]) if len(adapters) > 1 else model
        if not cfg.create_new_adapter:
            return PeftModel.from_pretrained(model, adapters[-1], is_trainable=is_trainable)
        model = merge_adapters(model, adapters[-1:])
    if cfg.quantization_bit:
        prepare_quantized(model)
    targets = _lora_targets(model, cfg.lora_target)
    init: Any = True
    if cfg.pissa_init:
        init = "pissa" if cfg.pissa_iter == -1 else f"pissa_niter_{cfg.pissa_iter}"
    lora = LoraConfig(
        # A reward model's score head is new: peft trains and saves it whole beside the adapter.
        task_type="SEQ_CLS" if is_reward_model(model) else "CAUSAL_LM",
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha or cfg.lora_rank * 2,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        modules_to_save=cfg.additional_target or None,
        use_rslora=cfg.use_rslora,
        use_dora=cfg.use_dora,
        init_lora_weights=init,
    )
    log.info("LoRA r=%d alpha=%s on %s", lora.r, lora.lora_alpha, ", ".join(targets))
    return get_peft_model(model, lora)


def prepare_quantized(model: Any) -> None:
    """The k-bit preparation QLoRA needs: frozen base weights, and inputs that carry a gradient so checkpointed
    blocks (which re-run from their inputs) reach the adapters. Unlike peft's prepare_model_for_kbit_training,
    embeddings, norms and the LM head stay in the compute dtype instead of fp32: on an 8B model with a 128k
    vocabulary that upcast alone adds ~2 GiB. upcast_layernorm still keeps the norms in fp32 when asked."""
    for param in model.parameters():
        param.requires_grad_(False)
    model.enable_input_require_grads()


def is_reward_model(model: Any) -> bool:
    """A sequence classifier with one output on a decoder (stage rm): its head is `score`."""
    return type(model).__name__.endswith("ForSequenceClassification")


def converts_pissa(cfg: Any) -> bool:
    """The output adapter is converted to plain LoRA: it then applies to the original base model."""
    return cfg.finetuning_type == "lora" and bool(cfg.pissa_init and cfg.pissa_convert)


def pissa_initial_dir(run_dir: Any) -> Path:
    """Where a run keeps its PiSSA adapter as initialised (RUN_DIR/pissa_init): the conversion needs it."""
    return Path(run_dir.path) / "pissa_init"


def save_pissa_initial(model: Any, directory: Path) -> None:
    """The adapter as PiSSA initialised it, before any step: the conversion subtracts it from the trained one.

    PiSSA moved the adapter's principal part out of the base weights (W_res = W - A0 B0); a plain LoRA on W needs
    AB - A0 B0. The saved config says init_lora_weights: true so that loading it back does not decompose W again.
    """
    config = model.peft_config["default"]
    init = config.init_lora_weights
    config.init_lora_weights = True
    try:
        model.save_pretrained(str(directory))
    finally:
        config.init_lora_weights = init


def save_pissa_as_lora(model: Any, output_dir: Path, initial_dir: Path) -> None:
    """Save the trained PiSSA adapter as a plain LoRA adapter (rank 2r) for the original base model."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    model.save_pretrained(str(output_dir), path_initial_model_for_weight_conversion=str(initial_dir))
    # peft's conversion keeps only the lora_A / lora_B pairs: put back what else was trained (modules_to_save).
    extra = {k: v for k, v in get_peft_model_state_dict(model).items() if ".lora_A." not in k and ".lora_B." not in k}
    if extra:
        weights_file = output_dir / "adapter_model.safetensors"
        weights = load_file(str(weights_file))
        weights.update({k: v.detach().cpu().contiguous() for k, v in extra.items()})
        save_file(weights, str(weights_file), metadata={"format": "pt"})
    log.info("PiSSA adapter converted to a LoRA adapter for the original base model")


def _lora_targets(model: Any, requested: list[str]) -> list[str]:
    available = linear_module_names(model)
    if [t.strip() for t in requested] in (["all"], ["all-linear"]):
        return available
    missing = [t for t in requested if t not in available]
    if missing:
        raise EngineError(
            f"lora_target: {', '.join(missing)} not found in this model",
            hint=f"the model's linear layers are: {', '.join(available)} (or use lora_target: all)",
        )
    return list(requested)


def _apply_freeze(model: Any, cfg: Any) -> None:
    """Train only the last n (or first -n) decoder layers, optionally only some modules in them, plus extras."""
    num_layers = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "num_layers", None)
    if not num_layers:
        raise EngineError("freeze fine-tuning cannot find the number of layers in this model's config")
    n = cfg.freeze_trainable_layers
    if abs(n) > num_layers:
        raise EngineError(f"freeze_trainable_layers: {n} but the model has only {num_layers} layers",
                          hint=f"use a value between -{num_layers} and {num_layers}")
    layer_ids = range(num_layers - n, num_layers) if n > 0 else range(-n)
    modules = [m.strip() for m in cfg.freeze_trainable_modules]
    extras = [m.strip() for m in (cfg.freeze_extra_modules or [])]
    layer_pattern = re.compile(r"\.(?:layers|h|blocks|encoder\.layers)\.(\d+)\.")
    trainable = 0
    for name, param in model.named_parameters():
        match = layer_pattern.search("." + name)
        in_layer = match is not None and int(match.group(1)) in layer_ids
        wanted = in_layer and (modules == ["all"] or any(f".{m}." in f".{name}" for m in modules))
        wanted = wanted or any(f".{e}." in f".{name}" or name.startswith(f"{e}.") for e in extras)
        param.requires_grad_(wanted)
        trainable += param.numel() if wanted else 0
    if trainable == 0:
        raise EngineError(
            "freeze fine-tuning left no trainable parameter",
            hint=f"check freeze_trainable_modules {modules} and freeze_extra_modules {extras} against the model",
        )
    log.info("freeze: training layers %s (%s)", list(layer_ids), ", ".join(modules))


def _upcast_trainable(model: Any) -> None:
    """Trainable weights in fp32 (pure_bf16 keeps bf16): optimizer updates in half precision lose small steps."""
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()


def upcast_norms(model: Any) -> None:
    """Normalisation weights in fp32 when the model is in bf16 / fp16 (LLaMA-Factory's upcast_layernorm).

    A hook casts each norm's output back to its input's dtype, so the next half-precision layer gets what it would
    have got without autocast too (pure_bf16, inference).
    """
    import torch

    upcast = 0
    for module in model.modules():
        if "norm" not in type(module).__name__.lower():
            continue
        params = [p for p in module.parameters(recurse=False) if p.dtype in (torch.float16, torch.bfloat16)]
        for param in params:
            param.data = param.data.float()
        if params:
            module.register_forward_hook(_output_in_input_dtype)
            upcast += 1
    if upcast:
        log.info("upcast_layernorm: %d normalisation layers kept in float32", upcast)


def _output_in_input_dtype(module: Any, inputs: tuple, output: Any) -> Any:
    import torch

    if inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
        return output.to(inputs[0].dtype)
    return output


def _as_list(value: str | list[str] | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)
