"""Calibration samples for a GPTQ export: the text the deployed model will read, from a registered dataset.

Conversations are rendered with the model's chat template; preference pairs as their prompt and chosen answer;
pre-training text as its documents. A dataset with bad rows is refused with their problems rather than read some
other way: calibrating on the wrong text quantizes for the wrong inputs.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from tuneforge.engine.errors import EngineError

log = logging.getLogger(__name__)

READ_FACTOR = 8  # records read per sample wanted: the samples are drawn from these, not just the first ones
SEED = 0  # the same dataset gives the same samples, so an export can be repeated
DATA_HINT = ("calibrate on conversations with their answers, preference pairs, or documents ({\"text\": …} rows) "
             "like the model's real inputs")


def calibration_texts(dataset: str, dataset_dir: str, tokenizer: Any, limit: int) -> tuple[list[str], str]:
    """Up to `limit` texts drawn (seeded) from the dataset's train split, and how they were read."""
    from tuneforge.data.sources import DatasetConfigError, DatasetNotFound, resolve_dataset_sources

    try:
        sources = resolve_dataset_sources(dataset, dataset_dir)
    except (DatasetNotFound, DatasetConfigError) as exc:
        raise EngineError(f"quantization_dataset: {exc}", hint="name a registered dataset, or a file or folder "
                                                               "that exists") from exc
    texts: list[str] = []
    readings = []
    for source in sources:
        found, reading = _source_texts(source, tokenizer, limit * READ_FACTOR)
        texts += found
        readings.append(f"{source.name} as {reading}")
    if len(texts) > limit:
        texts = random.Random(SEED).sample(texts, limit)
    return texts, ", ".join(readings)


def _source_texts(source: Any, tokenizer: Any, limit: int) -> tuple[list[str], str]:
    from tuneforge.data.records import ChatRecord, PreferenceRecord, TextRecord

    texts, kinds = [], set()
    for record in _records(source, limit):
        if isinstance(record, PreferenceRecord):
            texts.append(_render(record.system, [*record.messages, record.chosen], tokenizer))
            kinds.add("preference pairs")
        elif isinstance(record, ChatRecord):
            texts.append(_render(record.system, record.messages, tokenizer))
            kinds.add("conversations")
        elif isinstance(record, TextRecord):
            texts.append(record.text)
            kinds.add("documents")
    return texts, " and ".join(sorted(kinds))


def _records(source: Any, limit: int) -> list[Any]:
    """Pre-training text described by its text column alone (LLaMA-Factory's way) as documents, preference data
    as pairs, anything else as conversations ({"text"} rows are documents there too). A row that does not read so
    is refused: reading it some other way would calibrate on text the model never sees."""
    from tuneforge.data.prepare import load_files
    from tuneforge.data.records import DatasetError

    documents = source.formatting in (None, "alpaca") and set(source.columns) == {"prompt"}
    kind = "text" if documents else "preference" if _has_pairs(source) else "chat"
    try:
        return load_files(source, source.files, kind, limit)
    except DatasetError as problems:
        raise EngineError(f"quantization_dataset: {source.name}: {problems}", hint=DATA_HINT) from problems


def _has_pairs(source: Any) -> bool:
    """Whether the dataset holds chosen / rejected answers: described so, or its first row has them."""
    from tuneforge.data.reading import iter_objects

    if {"chosen", "rejected"} & set(source.columns):
        return True
    for item in iter_objects(source.files[0], str(source.files[0])):
        return isinstance(item, tuple) and isinstance(item[1], dict) and "chosen" in item[1]
    return False


def _render(system: str | None, turns: list[Any], tokenizer: Any) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": m.role, "content": m.content} for m in turns]
    if getattr(tokenizer, "chat_template", None):
        try:
            return str(tokenizer.apply_chat_template(messages, tokenize=False))
        except Exception:  # a role the template rejects (tool calls…): the words still calibrate
            log.debug("the chat template failed on a calibration sample; using its plain text")
    return "\n".join(m["content"] for m in messages)


def calibration_samples(texts: list[str], tokenizer: Any, nsamples: int, maxlen: int) -> list[Any]:
    """Token ids of the first `nsamples` non-empty texts, each cut to `maxlen` tokens. A text that already starts
    with the BOS token (a rendered chat template) gets no second one."""
    bos = getattr(tokenizer, "bos_token", None)
    samples = []
    for text in texts:
        special = not (bos and text.startswith(bos))
        ids = tokenizer(text, add_special_tokens=special, truncation=True, max_length=maxlen,
                        return_tensors="pt")["input_ids"][0]
        if ids.numel() > 1:
            samples.append(ids)
        if len(samples) == nsamples:
            break
    return samples
