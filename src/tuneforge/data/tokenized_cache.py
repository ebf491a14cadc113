"""`tokenized_path`: the tokenised samples of a run saved as JSON, and read back instead of tokenising again.

As in LLaMA-Factory, an existing saved copy is used as is (its datasets, template and cutoff_len are those of the
run that saved it) unless `overwrite_cache` asks to tokenise afresh and replace it. JSON, not pickle: a saved copy
is data a user may hand over, and reading it must not run code.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tuneforge.data.packing import PackedSample
from tuneforge.data.tokenize import EncodedSample
from tuneforge.data.tokenize_pairs import KTOSample, PairSample, PromptSample

FILE_NAME = "tuneforge_tokenized.json"
FORMAT = 1


def saved_copy(tokenized_path: str | None, overwrite: bool) -> Path | None:
    """The saved copy to read, or None when there is none or it is to be replaced."""
    if not tokenized_path or overwrite:
        return None
    path = Path(tokenized_path) / FILE_NAME
    return path if path.is_file() else None


def save_samples(tokenized_path: str, train: list[Any], evaluation: list[Any], stats: dict[str, Any]) -> Path:
    directory = Path(tokenized_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    body = {"format": FORMAT, "train": [_encode(s) for s in train], "eval": [_encode(s) for s in evaluation],
            "stats": stats}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(body), encoding="utf-8")
    os.replace(partial, path)  # a reader never sees half a file
    return path


def load_samples(path: Path) -> tuple[list[Any], list[Any], dict[str, Any]]:
    body = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"tokenized_path: {path} is not a tokenised copy saved by this version of tuneforge; "
                         "set overwrite_cache: true to tokenise again")
    return [_decode(s) for s in body["train"]], [_decode(s) for s in body["eval"]], dict(body.get("stats") or {})


# The sample kinds a copy holds, by the name saved with each sample.
KINDS: dict[str, type] = {"encoded": EncodedSample, "packed": PackedSample, "pair": PairSample, "kto": KTOSample,
                          "prompt": PromptSample}
_NAMES = {kind: name for name, kind in KINDS.items()}


def _encode(sample: Any) -> dict[str, Any]:
    return {"kind": _NAMES[type(sample)], **asdict(sample)}


def _decode(item: dict[str, Any]) -> Any:
    kind = item.pop("kind", "encoded")
    if kind not in KINDS:
        raise ValueError(f"tokenized_path: a saved sample of unknown kind {kind!r}; set overwrite_cache: true")
    return KINDS[kind](**item)
