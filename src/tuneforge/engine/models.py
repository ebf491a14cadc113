"""Load a causal LM and its tokenizer from a local directory, a GGUF file, a hub id or the bundled model."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from tuneforge.engine.bundled import bundled_model_dir
from tuneforge.engine.errors import EngineError, NotYetSupported
from tuneforge.engine.precision import Precision
from tuneforge.modelref import ModelNotFound, ModelSource, locate_model

log = logging.getLogger(__name__)


def resolve_model_source(name: str, *, config_dir: Path | None = None, gguf_file: str | None = None) -> ModelSource:
    """Where the model is (see tuneforge.modelref); the bundled GGUF comes back as its converted directory."""
    try:
        source = locate_model(name, config_dir=config_dir, gguf_file=gguf_file)
    except ModelNotFound as exc:
        raise EngineError(str(exc), hint=exc.hint) from exc
    return ModelSource(str(bundled_model_dir())) if source.bundled else source


def loadable(source: ModelSource) -> ModelSource:
    """A GGUF model is converted once to safetensors in the model cache: loading it directly de-quantises it every
    time (~30 s for 135M parameters) and leaves it flagged as quantized, which training and saving refuse."""
    if source.gguf_file and source.is_local:
        from tuneforge.engine.bundled import converted_gguf_dir

        return ModelSource(str(converted_gguf_dir(Path(source.path) / source.gguf_file)))
    return source


def load_tokenizer(source: ModelSource, *, trust_remote_code: bool = False, **hub: Any):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(
            source.path, gguf_file=source.gguf_file, trust_remote_code=trust_remote_code, **hub
        )
    except OSError as exc:
        raise _load_error(source, exc) from exc


def load_model(cfg: Any, source: ModelSource, precision: Precision, *, for_training: bool = True,
               head: str = "causal_lm", padding_free: bool = True):
    """The model in the dtype its precision wants, with the attention implementation and RoPE scaling asked for.

    head "score": a sequence classifier with one output (a reward model) on the same backbone. padding_free False:
    the trainer pads its batches (TRL's), so flash_attn auto means plain SDPA, which also samples fastest.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    hub = _hub_kwargs(cfg)
    try:
        config = AutoConfig.from_pretrained(
            source.path, gguf_file=source.gguf_file, trust_remote_code=cfg.trust_remote_code, **hub
        )
    except OSError as exc:
        raise _load_error(source, exc) from exc
    _apply_rope_scaling(config, cfg)
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": precision.load_dtype(cfg.finetuning_type),
        "attn_implementation": attention_implementation(cfg.flash_attn, config, cfg.cutoff_len,
                                                        for_training and padding_free, precision),
        "trust_remote_code": cfg.trust_remote_code,
        **hub,
    }
    if cfg.quantization_bit:
        kwargs["quantization_config"] = quantization_config(cfg, precision)
        # Quantized weights are made where they load and cannot be moved afterwards: each rank's own device.
        kwargs["device_map"] = {"": _local_device(precision)}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if head == "score":
        config.num_labels = 1
    model_class = AutoModelForSequenceClassification if head == "score" else AutoModelForCausalLM
    try:
        model = _from_pretrained(model_class, source.path, kwargs, auto_attention=cfg.flash_attn == "auto")
    except OSError as exc:
        raise _load_error(source, exc) from exc
    except ImportError as exc:
        raise EngineError(f"loading {source.path} needs a package that is missing: {exc}") from exc
    if for_training:
        model.config.use_cache = False
    if cfg.enable_liger_kernel:
        _apply_liger(model)
    if cfg.use_unsloth:
        raise NotYetSupported(
            "use_unsloth is not supported: Unsloth patches models for CUDA only and replaces the trainer",
            hint="remove use_unsloth; tuneforge's padding-free batches and LM-head skipping give the speed-up here",
        )
    return model


def _from_pretrained(model_class: Any, path: str, kwargs: dict[str, Any], *, auto_attention: bool) -> Any:
    """flash_attn auto falls back to variable-length SDPA for a model class without FlashAttention-2 support."""
    try:
        return model_class.from_pretrained(path, **kwargs)
    except ValueError as exc:
        if not auto_attention or kwargs["attn_implementation"] != "flash_attention_2":
            raise
        from tuneforge.engine.varlen_attention import register

        log.warning("FlashAttention-2 does not support this model (%s); variable-length SDPA instead", exc)
        return model_class.from_pretrained(path, **{**kwargs, "attn_implementation": register()})


def attention_implementation(
    flash_attn: str, config: Any = None, cutoff_len: int = 0, for_training: bool = True,
    precision: Precision | None = None,
) -> str:
    """auto: for padding-free training FlashAttention-2's variable-length kernel on a GPU that has it (it reads
    the sample boundaries from the position ids), else variable-length SDPA (see varlen_attention); plain SDPA
    otherwise."""
    if flash_attn == "auto":
        window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
        if for_training and precision is not None and _flash_attention_runs(precision):
            return "flash_attention_2"
        if for_training and not (window and cutoff_len > window):
            from tuneforge.engine.varlen_attention import register

            return register()
        return "sdpa"
    if flash_attn == "disabled":
        return "eager"
    if flash_attn == "fa2":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is None:
            raise EngineError(
                "flash_attn: fa2 needs the flash-attn package and a CUDA GPU",
                hint="pip install flash-attn on a GPU host, or use flash_attn: sdpa",
            )
        return "flash_attention_2"
    return "sdpa"


def _flash_attention_runs(precision: Precision) -> bool:
    """flash-attn imports in a version transformers supports, on a CUDA GPU of Ampere or newer, training in
    bf16 / fp16 (transformers' own check, which imports the package: a build for another torch fails it)."""
    if precision.device != "cuda" or precision.name == "fp32":
        return False
    import torch
    from transformers import utils

    return torch.cuda.get_device_capability() >= (8, 0) and utils.is_flash_attn_2_available()


def _apply_rope_scaling(config: Any, cfg: Any) -> None:
    if not cfg.rope_scaling:
        return
    max_pos = getattr(config, "max_position_embeddings", None)
    if not max_pos or cfg.cutoff_len <= max_pos:
        log.warning("rope_scaling=%s ignored: cutoff_len %s fits the model's context %s",
                    cfg.rope_scaling, cfg.cutoff_len, max_pos)
        return
    factor = float(math.ceil(cfg.cutoff_len / max_pos))
    current = getattr(config, "rope_parameters", None) or {}
    nested = config.nested_rope_parameter_keys(current) if hasattr(config, "nested_rope_parameter_keys") else []
    if nested:  # one RoPE per layer type (e.g. sliding and full attention): each is scaled, NoPE layers stay
        scaled = {key: rope_scaling_parameters(current[key], cfg.rope_scaling, factor, max_pos)
                  for key in nested if current[key] is not None}
        config.rope_parameters = {**current, **scaled}
    else:
        config.rope_parameters = rope_scaling_parameters(current, cfg.rope_scaling, factor, max_pos)
    if cfg.rope_scaling != "dynamic":
        # Dynamic NTK reads max_position_embeddings as the trained context: beyond it, it rescales per forward pass.
        config.max_position_embeddings = max_pos * int(factor)
    log.info("RoPE scaling %s with factor %.0f for cutoff_len %d", cfg.rope_scaling, factor, cfg.cutoff_len)


def rope_scaling_parameters(current: dict[str, Any], rope_type: str, factor: float, max_pos: int) -> dict[str, Any]:
    """transformers' rope_parameters for a scaling type: what each type requires (see modeling_rope_utils), with
    LLaMA-Factory's llama3 frequency factors. The previous scaling's own keys are dropped, theta is kept."""
    params: dict[str, Any] = {key: current[key] for key in ("rope_theta", "partial_rotary_factor") if key in current}
    params.update(rope_type=rope_type, factor=factor)
    if rope_type in ("yarn", "llama3"):
        params["original_max_position_embeddings"] = max_pos
    if rope_type == "llama3":
        params.update(low_freq_factor=1.0, high_freq_factor=4.0)
    return params


def _local_device(precision: Precision) -> str:
    import os

    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if precision.device == "cuda" else precision.device


def quantization_config(cfg: Any, precision: Precision):
    """QLoRA: 4/8-bit weights through bitsandbytes (CUDA GPUs, and CPUs with bitsandbytes 0.50), or HQQ / EETQ."""
    import importlib.util

    if cfg.quantization_method == "bnb":
        if importlib.util.find_spec("bitsandbytes") is None:
            raise EngineError(f"quantization_bit {cfg.quantization_bit} needs the bitsandbytes package",
                              hint="pip install 'tuneforge[gpu]' (or bitsandbytes), or remove quantization_bit")
        return bnb_config(cfg, precision)
    package = {"hqq": "hqq", "eetq": "eetq"}[cfg.quantization_method]
    if importlib.util.find_spec(package) is None:
        raise EngineError(f"quantization_method {package} needs the {package} package", hint=f"pip install {package}")
    from transformers import EetqConfig, HqqConfig

    if package == "hqq":
        return HqqConfig(nbits=cfg.quantization_bit)
    return EetqConfig("int8")


def bnb_config(cfg: Any, precision: Precision):
    """The bitsandbytes config the settings ask for (building it needs neither bitsandbytes nor CUDA)."""
    from transformers import BitsAndBytesConfig

    if cfg.quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.quantization_type,
        bnb_4bit_use_double_quant=cfg.double_quantization,
        bnb_4bit_compute_dtype=precision.compute_dtype,
    )


def _apply_liger(model: Any) -> None:
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError as exc:
        raise EngineError(
            "enable_liger_kernel needs the liger-kernel package (Triton kernels for CUDA GPUs)",
            hint="pip install liger-kernel on a GPU host, or set enable_liger_kernel: false",
        ) from exc
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    model_type = getattr(model.config, "model_type", None)
    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        # Unpatched, the model would compute full-vocabulary logits for the loss: more memory, not less.
        raise EngineError(f"enable_liger_kernel: Liger has no kernels for model type '{model_type}'",
                          hint="set enable_liger_kernel: false for this model")
    _apply_liger_kernel_to_instance(model=model)


def _hub_kwargs(cfg: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"revision": cfg.model_revision}
    if cfg.cache_dir:
        kwargs["cache_dir"] = cfg.cache_dir
    if cfg.hf_hub_token:
        kwargs["token"] = cfg.hf_hub_token
    return kwargs


def _load_error(source: ModelSource, exc: Exception) -> EngineError:
    if source.is_local:
        return EngineError(f"cannot load the model in {source.path}: {exc}",
                           hint="the directory needs config.json and weights (safetensors or bin), or a .gguf file")
    return EngineError(
        f"cannot load '{source.path}' from the Hugging Face Hub: {exc}",
        hint="check the id and your network, or download the model and give its local directory",
    )
