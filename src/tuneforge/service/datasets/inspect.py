"""Looking into a dataset version: statistics with a chosen model's tokenizer and cutoff, and the template preview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.modelref import ModelNotFound, is_bundled_name, locate_model
from tuneforge.planning.paths import confine_tree, is_hub_id
from tuneforge.schemas import ConfigProblem
from tuneforge.service.errors import InvalidInput
from tuneforge.settings import Settings


def model_tokenizer_dir(model: str, settings: Settings) -> Path:
    """The folder holding the model's tokenizer.json (bundled: its converted copy), found without torch."""
    from tuneforge.planning.model_facts import local_model_dir

    try:
        source = locate_model(_local_or_hub(model, settings))
    except ModelNotFound as exc:
        raise InvalidInput.of([ConfigProblem("model", str(exc))]) from exc
    directory = local_model_dir(source, settings.models_path)
    if directory is None or not (directory / "tokenizer.json").is_file():
        hint = "run a task or `tuneforge chat` with it once" if source.bundled else "use a model folder with one"
        raise InvalidInput.of([ConfigProblem("model", f"no tokenizer.json for {model!r} here yet; {hint}")])
    return directory


def _local_or_hub(model: str, settings: Settings) -> str:
    """The model as locate_model should see it: 'bundled' or a hub id as given (only its local cache is read), a
    path confined to the allowed folders with every file in it (a relative one looked up there, not in the
    server's working directory)."""
    if is_bundled_name(model) or is_hub_id(model, settings.roots):
        return model
    path, problem = confine_tree(model, settings.roots, "model")
    if problem or path is None:
        raise InvalidInput.of([problem or ConfigProblem("model", "not a usable path")])
    return str(path)


def statistics(fields: dict[str, Any], by_split: dict[str, list[Path]], stored: dict[str, Any] | None,
               model: str | None, cutoff_len: int | None, settings: Settings) -> dict[str, Any]:
    from tuneforge.data.statistics import dataset_statistics

    if model is None and cutoff_len is None and stored is not None:
        return stored
    tokenizer = model_tokenizer_dir(model, settings) / "tokenizer.json" if model else None
    stats = dataset_statistics(by_split, tokenizer_file=tokenizer, cutoff_len=cutoff_len, **fields)
    return stats.model_dump(mode="json")


def preview(fields: dict[str, Any], files: list[Path], *, template: str, model: str, n: int, cutoff_len: int,
            train_on_prompt: bool, mask_history: bool, tokens: bool, settings: Settings) -> dict[str, Any]:
    from tuneforge.data.preview import load_preview, preview_records
    from tuneforge.data.tokenizer_file import FastTokenizer, TokenizerFileError

    try:
        tokenizer = FastTokenizer.from_dir(model_tokenizer_dir(model, settings))
    except TokenizerFileError as exc:
        raise InvalidInput.of([ConfigProblem("model", str(exc))]) from exc
    stage = "pt" if fields["purpose"] == "pt" else "sft"
    try:
        # the dataset's purpose makes the record kind exact: a prompt file looks like SFT data, a pair could be chat
        loaded = load_preview(files, n, fields["formatting"], fields["columns"] or None, fields["tags"] or None,
                              stage=stage, names=[p.name for p in files], purpose=fields["purpose"] or None)
        samples = preview_records(loaded.records, template=template, tokenizer=tokenizer, cutoff_len=cutoff_len,
                                  train_on_prompt=train_on_prompt, mask_history=mask_history, stage=stage,
                                  token_view=tokens)
    except ValueError as exc:  # an unknown template or a bad argument: the message names the field
        field, _, message = str(exc).partition(":")
        if not message or " " in field:
            field, message = "template", str(exc)
        raise InvalidInput.of([ConfigProblem(field, message.strip())]) from exc
    return {"template": template, "model": model, "cutoffLen": cutoff_len,
            "samples": [s.model_dump(mode="json") for s in samples],
            "skipped": [str(p) for p in loaded.skipped], "skippedTotal": loaded.skipped_total}
