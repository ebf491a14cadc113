"""What a finished run leaves in its output dir: weights (adapter or model), the tokenizer carrying the chat
template used in training, a model card with the config and final metrics, results, and the loss plot."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from tuneforge.engine.adapters import converts_pissa, pissa_initial_dir, save_pissa_as_lora

log = logging.getLogger(__name__)


def save_outputs(
    trainer: Any, prepared: Any, cfg: Any, output_dir: Path, metrics: dict[str, Any], run_dir: Any
) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    if converts_pissa(cfg):
        save_pissa_as_lora(trainer.model, output_dir, pissa_initial_dir(run_dir))
    else:
        trainer.save_model(str(output_dir))
    tokenizer = prepared.tokenizer
    # Every server that loads this directory formats prompts exactly as training did.
    tokenizer.chat_template = prepared.template.to_jinja()
    tokenizer.save_pretrained(str(output_dir))
    _save_generation_config(trainer.model, tokenizer, prepared.template, output_dir)
    clean_metrics = {k: _plain(v) for k, v in metrics.items()}
    (output_dir / "all_results.json").write_text(json.dumps(clean_metrics, indent=2) + "\n", encoding="utf-8")
    config = cfg.model_dump_for_spec()
    (output_dir / "training_args.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    (output_dir / "README.md").write_text(model_card(cfg, config, clean_metrics), encoding="utf-8")
    if cfg.plot_loss:
        for path in plot_loss(run_dir.trainer_log_file, output_dir):
            log.info("loss plot: %s", path)
    log.info("saved %s to %s", "adapter" if cfg.finetuning_type == "lora" else "model", output_dir)


def _save_generation_config(model: Any, tokenizer: Any, template: Any, output_dir: Path) -> None:
    base = getattr(model, "get_base_model", lambda: model)()
    generation = getattr(base, "generation_config", None)
    if generation is None:
        return
    generation.eos_token_id = stop_token_ids(tokenizer, template)
    generation.pad_token_id = tokenizer.pad_token_id
    generation.save_pretrained(str(output_dir))


def stop_token_ids(tokenizer: Any, template: Any) -> list[int]:
    """Token ids that end an answer: the tokenizer's eos and the template's stop words (e.g. <|im_end|>)."""
    ids = {tokenizer.eos_token_id}
    for word in template.stop_words:
        token_id = tokenizer.convert_tokens_to_ids(word)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return sorted(i for i in ids if i is not None)


def model_card(cfg: Any, config: dict[str, Any], metrics: dict[str, Any]) -> str:
    kind = "LoRA adapter" if cfg.finetuning_type == "lora" else f"{cfg.finetuning_type} fine-tuned model"
    front = {"base_model": cfg.model_name_or_path, "library_name": "peft" if cfg.finetuning_type == "lora" else
             "transformers", "tags": ["tuneforge", cfg.stage, cfg.finetuning_type]}
    rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in metrics.items())
    return (
        f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n"
        f"# {Path(str(cfg.output_dir or 'output')).name}\n\n"
        f"A {kind} of `{cfg.model_name_or_path}` trained with tuneforge (stage `{cfg.stage}`, "
        f"template `{cfg.template or 'auto'}`, datasets {', '.join(cfg.dataset or [])}).\n\n"
        f"## Final metrics\n\n| metric | value |\n|---|---|\n{rows}\n\n"
        f"## Training configuration\n\n```yaml\n{yaml.safe_dump(config, sort_keys=False, allow_unicode=True)}```\n"
    )


def plot_loss(trainer_log: Path, output_dir: Path) -> list[Path]:
    """training_loss.png (train loss with a smoothed line) and training_eval_loss.png, as LLaMA-Factory draws."""
    if not trainer_log.is_file():
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in trainer_log.read_text(encoding="utf-8").splitlines() if line.strip()]
    paths = []
    for key, name in (("loss", "training_loss.png"), ("eval_loss", "training_eval_loss.png")):
        points = [(r["current_steps"], r[key]) for r in records if r.get(key) is not None]
        if not points:
            continue
        steps, values = zip(*points, strict=True)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, values, color="#1f77b4", alpha=0.4 if len(points) > 1 else 1.0, marker=".", label="original")
        if len(points) > 2:
            ax.plot(steps, _smooth(list(values)), color="#1f77b4", label="smoothed")
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(f"{key} of {output_dir.name}")
        ax.legend()
        fig.tight_layout()
        path = output_dir / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def _smooth(values: list[float], weight: float = 0.8) -> list[float]:
    """Exponential moving average, with a bias correction so the line starts at the first value."""
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * value
        out.append(avg / (1 - weight**i))
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
