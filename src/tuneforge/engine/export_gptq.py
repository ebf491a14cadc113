"""GPTQ quantization of an export's linear layers, saved in the compressed-tensors format.

GPTQ (Frantar et al., 2022) rounds a weight matrix one input column at a time and spreads each column's rounding
error over the columns not yet rounded, weighted by the inverse Hessian of the layer's inputs (H = 2·XᵀX over the
calibration tokens), so the layer's outputs on inputs like the calibration data move as little as the grid allows.
The decoder layers are quantized in order, each calibrated on what the already quantized layers before it output.

The grid, the packing and the file format are compressed-tensors' (the format vLLM serves and transformers loads):
symmetric int4 / int8 with one scale per group of input columns ("pack-quantized", as W4A16 / W8A16). Embeddings,
norms and the output head keep the export's dtype.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.engine.errors import EngineError

log = logging.getLogger(__name__)

# Added to the Hessian's diagonal, as a fraction of its mean: keeps the Cholesky factorisation stable when some
# inputs are (nearly) constant over the calibration tokens. GPTQ's reference value.
DAMPING = 0.01
BLOCK = 128  # columns whose errors are applied to the rest of the matrix at once
ROUTERS = ("gate", "router", "shared_expert_gate")  # MoE routers' names in transformers' models
LayerProgress = Callable[[int, int, str], None]
QuantParams = dict[str, tuple[Any, Any]]  # module name -> (scales, zero points), as compressed-tensors stores them


@dataclass(frozen=True)
class GptqSettings:
    bits: int
    group_size: int  # input columns per scale; -1: one scale per output row
    scale_dtype: Any  # the export's dtype: scales are rounded to it first, so saving keeps every weight on its grid

    def arguments(self) -> Any:
        """compressed-tensors' description of the scheme (what config.json records)."""
        from compressed_tensors.quantization import QuantizationArgs

        if self.group_size == -1:
            return QuantizationArgs(num_bits=self.bits, type="int", symmetric=True, strategy="channel")
        return QuantizationArgs(num_bits=self.bits, type="int", symmetric=True, strategy="group",
                                group_size=self.group_size)


class _Captured(Exception):
    """Not an error: the first decoder layer's inputs were caught, the rest of the forward is not needed."""


def quantize_model(model: Any, samples: list[Any], settings: GptqSettings,
                   progress: LayerProgress | None = None) -> QuantParams:
    """Quantize every linear layer of the decoder layers in place (their weights then lie on the grid); returns
    each one's scales and zero points."""
    import torch

    layers = decoder_layers(model)
    names = {id(module): name for name, module in model.named_modules()}
    quantized: QuantParams = {}
    with torch.no_grad():
        inputs = _first_layer_inputs(model, layers[0], samples)
        for k, layer in enumerate(layers, start=1):
            quantized |= _quantize_layer(layer, names[id(layer)], inputs, settings)
            inputs = [_with_hidden(args, kwargs, _hidden(layer(*args, **kwargs))) for args, kwargs in inputs]
            if progress is not None:
                progress(k, len(layers), names[id(layer)])
    return quantized


def decoder_layers(model: Any) -> Any:
    """The model's stack of decoder layers: the module list as long as config.num_hidden_layers."""
    import torch

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    count = getattr(config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise EngineError(f"quantization_bit: cannot find the {count} decoder layers of this "
                      f"{type(model).__name__}", hint="export without quantization_bit")


def quantized_linears(layer: Any) -> dict[str, Any]:
    """The linear layers GPTQ quantizes in a decoder layer, by name within it: all but MoE routers, which pick
    experts from small logits (and which quantization recipes leave out)."""
    import torch

    return {name: module for name, module in layer.named_modules()
            if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in ROUTERS}


def check_quantizable(model: Any, group_size: int) -> None:
    """Refused before calibrating: weights GPTQ would leave in full precision inside the decoder layers (experts
    kept as fused 3-D tensors), and input widths that are not a whole number of groups."""
    import torch

    layers = decoder_layers(model)
    names = {id(module): name for name, module in model.named_modules()}
    kept = {id(p) for name, m in layers.named_modules()  # linear layers and routers, whatever their class
            if isinstance(m, torch.nn.Linear) or name.rsplit(".", 1)[-1] in ROUTERS for p in m.parameters()}
    other = sorted(((name, p) for name, p in layers.named_parameters() if p.ndim >= 2 and id(p) not in kept),
                   key=lambda item: -item[1].ndim)  # fused experts (3-D) first: the likeliest reason
    if other:
        name, parameter = other[0]
        raise EngineError(f"quantization_bit: {len(other)} weights of the decoder layers are not torch linear layers "
                          f"(e.g. {name}, {tuple(parameter.shape)}: fused MoE experts, or GPT-2's Conv1D), and GPTQ "
                          "here quantizes linear layers only",
                          hint="export this model without quantization_bit, or quantize it with llm-compressor")
    if group_size == -1:
        return
    for module in layers.modules():
        if isinstance(module, torch.nn.Linear) and module.in_features % group_size:
            name = names[id(module)]
            fits = [g for g in (256, 128, 64, 32) if module.in_features % g == 0]
            raise EngineError(f"quantization_group_size: {group_size} does not divide the {module.in_features} "
                              f"input columns of layer {name}",
                              hint=f"choose {' or '.join(map(str, fits))}" if fits else "choose -1 (one scale per row)")


def _first_layer_inputs(model: Any, first: Any, samples: list[Any]) -> list[tuple[tuple, dict]]:
    """(args, kwargs) of the first decoder layer for each sample: the embeddings, position embeddings and mask the
    model computes, caught by a hook that stops the forward there."""
    caught: list[tuple[tuple, dict]] = []

    def catch(_module: Any, args: tuple, kwargs: dict) -> None:
        caught.append((args, kwargs))
        raise _Captured

    hook = first.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        device = model.get_input_embeddings().weight.device
        for ids in samples:
            with contextlib.suppress(_Captured):
                model(input_ids=ids[None].to(device), use_cache=False)
    finally:
        hook.remove()
    return caught


def _hidden(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


def _with_hidden(args: tuple, kwargs: dict, hidden: Any) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _quantize_layer(layer: Any, prefix: str, inputs: list[tuple[tuple, dict]], settings: GptqSettings) -> QuantParams:
    """Hessians of every linear layer's inputs over all samples, then GPTQ on each weight."""

    linears = {f"{prefix}.{name}": m for name, m in quantized_linears(layer).items()}
    hessians = {name: _Hessian(module) for name, module in linears.items()}
    for args, kwargs in inputs:
        layer(*args, **kwargs)
    quantized = {}
    for name, module in linears.items():
        hessian = hessians[name].finish()
        weight, scales, zero_points = gptq(module.weight.data, hessian, settings)
        module.weight.data.copy_(weight.to(module.weight.dtype))
        quantized[name] = scales, zero_points
    return quantized


class _Hessian:
    """2·XᵀX / n of a linear layer's inputs, accumulated by a forward hook (in float32)."""

    def __init__(self, module: Any) -> None:
        import torch

        self.sum = torch.zeros(module.in_features, module.in_features, device=module.weight.device)
        self.tokens = 0
        self.hook = module.register_forward_hook(self._add)

    def _add(self, _module: Any, args: tuple, _output: Any) -> None:
        x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
        self.sum.addmm_(x.T, x)
        self.tokens += x.shape[0]

    def finish(self) -> Any:
        self.hook.remove()
        return self.sum * (2 / max(self.tokens, 1))


def gptq(weight: Any, hessian: Any, settings: GptqSettings) -> tuple[Any, Any, Any]:
    """GPTQ on one weight matrix (rows = outputs, columns = inputs): (weight on the grid in float32, scales, zero
    points), the scales shaped (rows, groups) as compressed-tensors stores them.

    The scales come first, from each group's weights as they are ("static groups"); the columns are then rounded
    in the order of their inputs' energy (the Hessian's diagonal, "act order"), so the errors of the inputs that
    matter most are spread over all the others. Groups stay contiguous in the file (no column index is needed)."""
    import torch

    w = weight.detach().float().clone()
    columns = w.shape[1]
    hessian = _without_unseen_inputs(hessian.float().clone(), w)
    group = columns if settings.group_size == -1 else settings.group_size
    grid = _Grid(settings)
    params = [grid.qparams(w[:, start:start + group]) for start in range(0, columns, group)]
    scales, zero_points = torch.stack([s for s, _ in params], dim=1), torch.stack([z for _, z in params], dim=1)
    order = torch.argsort(torch.diag(hessian), descending=True)
    w, group_of = w[:, order], order // group
    inverse = _inverse_hessian_factor(hessian[order][:, order])
    quantized = torch.zeros_like(w)
    for start in range(0, columns, BLOCK):
        end = min(start + BLOCK, columns)
        block, block_inverse = w[:, start:end].clone(), inverse[start:end, start:end]
        errors = torch.zeros_like(block)
        for i in range(end - start):
            g = group_of[start + i]
            column = block[:, i]
            rounded = grid.round(column, scales[:, g], zero_points[:, g])
            quantized[:, start + i] = rounded
            error = (column - rounded) / block_inverse[i, i]
            block[:, i:] -= error[:, None] * block_inverse[i, i:][None, :]
            errors[:, i] = error
        w[:, end:] -= errors @ inverse[start:end, end:]
    in_place = torch.empty_like(quantized)
    in_place[:, order] = quantized
    return in_place, scales, zero_points


def _without_unseen_inputs(hessian: Any, w: Any) -> Any:
    """Inputs never seen over the calibration tokens (zero rows of H) get zero weights and a unit diagonal."""
    import torch

    unseen = torch.diag(hessian) == 0
    hessian[unseen, unseen] = 1
    w[:, unseen] = 0
    return hessian


def _inverse_hessian_factor(hessian: Any) -> Any:
    """The upper Cholesky factor of the damped H⁻¹."""
    import torch

    hessian += DAMPING * torch.mean(torch.diag(hessian)) * torch.eye(hessian.shape[0], device=hessian.device)
    try:
        inverse = torch.cholesky_inverse(torch.linalg.cholesky(hessian))
        return torch.linalg.cholesky(inverse, upper=True)
    except torch.linalg.LinAlgError as exc:
        raise EngineError("quantization_bit: a layer's inputs over the calibration samples are too degenerate to "
                          "quantize with GPTQ",
                          hint="calibrate on more (and more varied) samples: raise quantization_nsamples or use "
                               "another quantization_dataset") from exc


class _Grid:
    """Rounding to compressed-tensors' symmetric integer grid, one scale per output row."""

    def __init__(self, settings: GptqSettings) -> None:
        from compressed_tensors.quantization import QuantizationArgs

        self.settings = settings
        self.per_row = QuantizationArgs(num_bits=settings.bits, type="int", symmetric=True, strategy="channel")

    def qparams(self, columns: Any) -> tuple[Any, Any]:
        from compressed_tensors.quantization.utils import calculate_qparams

        scale, zero_point = calculate_qparams(columns.amin(dim=1), columns.amax(dim=1), self.per_row)
        return scale.to(self.settings.scale_dtype).float(), zero_point

    def round(self, column: Any, scale: Any, zero_point: Any) -> Any:
        from compressed_tensors.quantization.lifecycle.forward import fake_quantize

        return fake_quantize(column[:, None], scale[:, None], zero_point[:, None], self.per_row)[:, 0]


def save_compressed(model: Any, quantized: QuantParams, settings: GptqSettings,
                    save: Callable[[Any], None], output_dir: Path) -> None:
    """Attach the scheme and each layer's scales, pack the weights (compressed-tensors), save with `save`, and
    record the scheme in config.json as `quantization_config`."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, QuantizationScheme, apply_quantization_config

    ignore = [name for name, module in model.named_modules()
              if type(module).__name__ == "Linear" and name not in quantized]
    scheme = QuantizationScheme(targets=["Linear"], weights=settings.arguments())
    apply_quantization_config(model, QuantizationConfig(config_groups={"group_0": scheme}, ignore=ignore))
    modules = dict(model.named_modules())
    for name, (scales, zero_points) in quantized.items():
        module = modules[name]
        module.weight_scale.data.copy_(scales.to(module.weight_scale.dtype))
        module.weight_zero_point.data.copy_(zero_points.to(module.weight_zero_point.dtype))
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    compressor.compress_model(model)
    save(model)
    compressor.update_config(str(output_dir))
