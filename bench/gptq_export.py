"""GPTQ export of the bundled SmolLM2-135M-Instruct: quality and size against the unquantized model and against
plain round-to-nearest (RTN) on the same grid and scales.

Each GPTQ row is a real export job (`run_export`: calibration, GPTQ, packing, saving) loaded back through
transformers; the RTN row rounds the same layers in memory. Quality is measured on held-out text: instruction
samples the export did not calibrate on (rendered with the chat template): mean loss per token and top-1 agreement
with the unquantized model's next-token prediction. Prints one table and one JSON line.

    .venv/bin/python bench/gptq_export.py            # ~6 min on 2 cores
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

CALIBRATION_SAMPLES = 64
MAXLEN = 256
GROUP = 64  # SmolLM2's 576-wide layers take 64 or 32, not 128
HELD_OUT = 40  # held-out samples scored (of the 151 not calibrated on): a stable mean, a minute a model


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.engine.bundled import bundled_model_dir
    from tuneforge.engine.export_calibration import calibration_samples, calibration_texts
    from tuneforge.engine.export_gptq import GptqSettings
    from tuneforge.planning.planner import BUNDLED_DATASETS

    torch.manual_seed(0)
    model_dir = bundled_model_dir()
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    every, _ = calibration_texts("instructions", str(BUNDLED_DATASETS), tokenizer, 10_000)
    used, _ = calibration_texts("instructions", str(BUNDLED_DATASETS), tokenizer, CALIBRATION_SAMPLES)  # the job's
    held_out = calibration_samples([t for t in every if t not in set(used)], tokenizer, HELD_OUT, MAXLEN)
    rows = [_row("float32 (not quantized)", reference, reference, held_out, _size(Path(model_dir)), 0.0)]
    with tempfile.TemporaryDirectory() as work:
        for bits in (4, 8):
            rows.append(_gptq_row(bits, Path(work), reference, held_out))
    rtn = copy.deepcopy(reference)
    _round_to_nearest(rtn, GptqSettings(4, GROUP, torch.float32))
    rows.append(_row(f"RTN int4 g{GROUP} (same grid, no GPTQ)", rtn, reference, held_out, None, 0.0))
    _print(rows)


def _gptq_row(bits: int, work: Path, reference: Any, held_out: list[Any]) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from tuneforge.engine.export import run_export
    from tuneforge.planning.planner import BUNDLED_DATASETS
    from tuneforge.rundir import EventWriter
    from tuneforge.schemas.export_spec import ExportSpec

    out_dir = work / f"int{bits}"
    spec = ExportSpec(base_model="bundled", output_dir=str(out_dir), quantization_bit=bits,
                      quantization_dataset="instructions", quantization_dataset_dir=str(BUNDLED_DATASETS),
                      quantization_nsamples=CALIBRATION_SAMPLES, quantization_maxlen=MAXLEN,
                      quantization_group_size=GROUP)
    start = time.perf_counter()
    run_export(spec, EventWriter(work / f"events-{bits}.jsonl"))
    seconds = time.perf_counter() - start
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    return _row(f"GPTQ int{bits} g{GROUP}", model, reference, held_out, _size(out_dir), seconds)


def _round_to_nearest(model: Any, settings: Any) -> None:
    import torch

    from tuneforge.engine.export_gptq import _Grid, decoder_layers

    grid = _Grid(settings)
    for module in decoder_layers(model).modules():
        if isinstance(module, torch.nn.Linear):
            weight = module.weight.data
            for start in range(0, weight.shape[1], GROUP):
                scale, zero_point = grid.qparams(weight[:, start:start + GROUP])
                for column in range(start, start + GROUP):
                    weight[:, column] = grid.round(weight[:, column], scale, zero_point)


def _row(name: str, model: Any, reference: Any, held_out: list[Any], size: int | None,
         seconds: float) -> dict[str, Any]:
    import torch

    loss = same = tokens = 0.0
    with torch.no_grad():
        for ids in held_out:
            batch = ids[None]
            out, ref = model(batch, labels=batch), reference(batch)
            loss += float(out.loss) * (ids.numel() - 1)
            same += float((out.logits[0, :-1].argmax(-1) == ref.logits[0, :-1].argmax(-1)).sum())
            tokens += ids.numel() - 1
    return {"model": name, "held_out_loss": round(loss / tokens, 4), "top1_agreement": round(same / tokens, 4),
            "weights_mb": round(size / 1e6, 1) if size else None, "export_s": round(seconds, 1) or None,
            "tokens": int(tokens)}


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'model':<40} {'held-out loss':>13} {'top-1 agree':>11} {'weights MB':>10} {'export s':>9}")
    for r in rows:
        print(f"{r['model']:<40} {r['held_out_loss']:>13.4f} {r['top1_agreement']:>11.3f} "
              f"{r['weights_mb'] if r['weights_mb'] is not None else '—':>10} "
              f"{r['export_s'] if r['export_s'] is not None else '—':>9}")
    print(json.dumps({"bench": "gptq_export", "model": "SmolLM2-135M-Instruct", "calibration": "instructions",
                      "calibration_samples": CALIBRATION_SAMPLES, "maxlen": MAXLEN, "group_size": GROUP,
                      "held_out_tokens": rows[0]["tokens"], "rows": rows}))


if __name__ == "__main__":
    main()
