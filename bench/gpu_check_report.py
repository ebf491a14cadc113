"""The figures and the report of bench/gpu_check.py: MFU, tuneforge's memory estimate, the table, the bars, the
JSON line. Torch-free (the planner's estimate is torch-free too), so the orchestrating process never touches CUDA."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

GIB = 1024**3
ESTIMATE_TOLERANCE = 0.20
BAR_SPEEDUP, BAR_MFU, BAR_QLORA_SHARE = 2.0, 0.40, 0.40


def add_figures(entry: dict[str, Any], row: Any, config: dict[str, Any], ctx: Any, result: dict[str, Any]) -> None:
    """MFU (GPU only) and, for worker rows, tuneforge's estimate of the peak and its ratio to the measured one."""
    from tuneforge.modelref.shape import read_model_shape
    from tuneforge.schemas import parse_training_config

    cfg = parse_training_config(config)
    model_dir = Path(config["model_name_or_path"])
    shape = read_model_shape(model_dir)
    device = result.get("device") or {}
    rate = entry.get("tokens_per_s")
    if device.get("kind") == "cuda" and rate:
        from tuneforge.planning.estimate_formulas import gpu_peak_tflops

        peak, _ = gpu_peak_tflops(device["name"], "bf16")
        entry["mfu"] = round(rate * model_flops_per_token(cfg, shape, ctx.lengths) / (peak * 1e12), 4)
        entry["peak_tflops"] = peak
    if row.runner != "worker" or not device:
        return
    estimate = estimate_bytes(cfg, shape, model_dir, device, ctx)
    if estimate is None:
        return
    entry["estimate_gib"] = round(estimate / GIB, 3 if device.get("kind") == "cpu" else 2)
    if entry.get("peak_gib") and entry["status"] == "ok":
        entry["estimate_ratio"] = round(entry["estimate_gib"] / entry["peak_gib"], 3)


def model_flops_per_token(cfg: Any, shape: Any, lengths: list[int]) -> float:
    """6·N for full fine-tuning, 4·N + 6·N_lora for LoRA (frozen weights get no weight gradient), plus causal
    attention (forward 2·L²·width per layer and sample, backward twice that), per trained token."""
    from tuneforge.planning.estimate_formulas import count_trainable

    matmul = shape.num_parameters - (0 if shape.tie_word_embeddings else shape.embedding_parameters)
    if cfg.finetuning_type == "full":
        dense = 6.0 * matmul
    else:
        dense = 4.0 * matmul + 6.0 * count_trainable(cfg, shape).adapter_parameters
    span = sum(n * n for n in lengths) / max(sum(lengths), 1)  # Σ L² / Σ L: mean attention span per token
    width = shape.num_attention_heads * shape.attention_head_dim
    return dense + 6.0 * shape.num_layers * width * span


def estimate_bytes(cfg: Any, shape: Any, model_dir: Path, device: dict[str, Any], ctx: Any) -> int | None:
    """planning.estimate.estimate_training with the inputs the planner gives it: the dataset summary measured with
    the model's tokenizer, and the device as the task gets it (the row's GPU before it loaded anything)."""
    from tuneforge.planning.datasets import check_task_datasets
    from tuneforge.planning.devices import Device, cpu_devices
    from tuneforge.planning.estimate import estimate_training

    key = str(model_dir)
    if key not in ctx.summaries:
        ctx.summaries[key], problems = check_task_datasets(cfg, "dataset", None, model_dir / "tokenizer.json")
        if problems:
            print(f"dataset summary: {problems}")
    summary = ctx.summaries[key]
    if summary is None:
        return None
    if device["kind"] == "cuda":
        devices = [Device(0, "cuda", device["name"], device["total_memory"], device["free_memory"])]
    else:
        devices = cpu_devices(1)
    estimate = estimate_training(cfg, shape, devices, summary.num_train_samples, summary.mean_sample_tokens)
    return estimate.memory.total


# --- report --------------------------------------------------------------------------------------------------

def bars(rows: dict[str, dict[str, Any]], on_gpu: bool) -> list[dict[str, Any]]:
    def value(key: str, name: str) -> float | None:
        entry = rows.get(key) or {}
        finished = entry.get("status") == "ok" or entry.get("status", "").startswith("time cap")
        return entry.get(name) if finished else None  # a capped row measured its steps up to the cap

    worker, base = value("worker-lora-1b", "tokens_per_s"), value("baseline-lora-1b", "tokens_per_s")
    speedup = worker / base if worker and base else None
    mfu = value("worker-lora-8b", "mfu")
    qlora, lora = value("worker-qlora-8b", "peak_gib"), value("worker-lora-8b", "peak_gib")
    share = qlora / lora if qlora and lora else None
    ratios = {key: e["estimate_ratio"] for key, e in rows.items() if e.get("estimate_ratio")}
    worst = max(ratios.values(), key=lambda r: abs(r - 1)) if ratios else None
    off = [key for key, r in ratios.items() if abs(r - 1) > ESTIMATE_TOLERANCE]
    memory = "peak GPU memory" if on_gpu else "peak RSS (CPU smoke: estimates vs RSS)"
    return [
        _bar("worker / baseline tokens/s, 1B LoRA", speedup, f"≥ {BAR_SPEEDUP:g}×", speedup and speedup >= BAR_SPEEDUP),
        _bar("MFU, worker LoRA 8B", mfu, f"≥ {BAR_MFU:.0%}", mfu and mfu >= BAR_MFU),
        _bar("QLoRA 8B peak / LoRA bf16 8B peak", share, f"≤ {BAR_QLORA_SHARE:.0%}",
             share and share <= BAR_QLORA_SHARE),
        _bar(f"estimate / measured {memory}, worst row", worst, f"within {ESTIMATE_TOLERANCE:.0%}",
             worst and not off, {"outside": off, "ratios": ratios}),
    ]


def _bar(name: str, value: float | None, target: str, passed: Any, extra: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    shown = None if value is None else round(value, 3)
    return {"bar": name, "value": shown, "target": target, "pass": None if value is None else bool(passed),
            **(extra or {})}


def table(rows: list[dict[str, Any]], on_gpu: bool) -> str:
    peak = "peak GiB" if on_gpu else "peak RSS GiB"
    header = ["row", "status", "tokens/s", "MFU", peak, "alloc GiB", "estimate GiB", "est/meas"]
    lines = [[r["row"], _short(r["status"]), _num(r.get("tokens_per_s"), 0), _pct(r.get("mfu")),
              _num(r.get("peak_gib"), 2), _num(r.get("allocated_gib"), 2), _num(r.get("estimate_gib"), 2),
              _num(r.get("estimate_ratio"), 2)] for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    fmt = "| " + " | ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt.format(*header), rule, *(fmt.format(*line) for line in lines)])


def report(rows: list[dict[str, Any]], ctx: Any, built: dict[str, Any], elapsed: float) -> None:
    by_key = {r["key"]: r for r in rows}
    checks = bars(by_key, ctx.on_gpu)
    text = table(rows, ctx.on_gpu)
    print(text)
    for check in checks:
        if not ctx.on_gpu:  # tiny models on a busy CPU: the figures prove the pipeline, not the bars
            check["pass"] = None
        verdict = {True: "PASS", False: "FAIL", None: "n/a" if ctx.on_gpu else "not judged (CPU smoke)"}[check["pass"]]
        value = "—" if check["value"] is None else f"{check['value']:g}"
        print(f"bar: {check['bar']}: {value} (target {check['target']}): {verdict}")
    p = ctx.profile
    summary = {
        "bench": "gpu_check", "smoke": not p.needs_cuda, "device": (built.get("device") or {}).get("name", "cpu"),
        "elapsed_s": round(elapsed, 1), "cutoff_len": p.cutoff_len, "batch": f"{p.batch_size}×{p.grad_accum}",
        "samples": len(ctx.lengths), "mean_sample_tokens": round(sum(ctx.lengths) / max(len(ctx.lengths), 1), 1),
        "planner_dataset": _planner_dataset(ctx), "models": built.get("models"), "rows": rows, "bars": checks,
    }
    line = json.dumps(summary)
    print(line)
    (ctx.out / "gpu_check.json").write_text(json.dumps({**summary, "table": text}, indent=1) + "\n",
                                            encoding="utf-8")


def _planner_dataset(ctx: Any) -> dict[str, Any] | None:
    """What the estimate was given: samples and mean tokens per sample as the planner measures them."""
    summary = next((s for s in ctx.summaries.values() if s is not None), None)
    if summary is None:
        return None
    return {"num_train_samples": summary.num_train_samples,
            "mean_sample_tokens": round(summary.mean_sample_tokens, 1)}


def _short(text: str, width: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
