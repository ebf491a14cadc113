"""Count tokens of many texts fast and exactly, without torch: the Rust `tokenizers` library and a piece cache.

Statistics need how many tokens a text has, not which ones. With the usual pre-tokenizers (byte-level BPE as in
GPT-2 / Llama 3 / Qwen / SmolLM, whitespace splitting) a space that follows a non-space character always starts
a pre-token, so a text's count is the sum of the counts of its pieces split at spaces (" word,"). Pieces repeat
a lot (Zipf), so each is encoded once and its count kept (up to CACHE_PIECES). A text where a space follows
other whitespace (a run, which may be one token) is encoded whole. The shortcut is taken only for tokenizers
whose normalizer and pre-tokenizer keep the property, and only after it agreed with whole-text encoding on a
probe set and on the first batch; otherwise every text is encoded whole (batched, without offsets).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

CHARS_PER_TOKEN = 3.6  # a rough average for English text with modern BPE vocabularies
CHUNK_CHARS = 64 * 1024  # longer texts are encoded in pieces (bounded memory)
CACHE_PIECES = 200_000  # ~20 MB of cached pieces at most; the cache starts over when full
# A space after whitespace other than "  " / "\n " (checked with `in`, which is faster): rare, so one regex scan.
_RARE_WHITESPACE_THEN_SPACE = re.compile(
    "[\t\r\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000] ")
_SAFE_NORMALIZERS = {"NFC", "NFKC", "NFD", "NFKD"}
_SAFE_PRE_TOKENIZERS = {"Whitespace", "WhitespaceSplit", "BertPreTokenizer", "Punctuation", "Digits"}
PROBES = [
    "Hello world, this is a test.", " leading space", "trailing space ", "two  spaces", "tab\there and\n newline",
    "numbers 12345 678 9", "it's they're we'll", "你好 世界，这是 一个 测试。", "emoji 🙂 ok", "mixed-case CamelCase x",
    "code: def f(x): return x * 2", "url https://example.com/a?b=c d", "<|im_start|> special <|im_end|>",
]


class TokenCounter:
    """Counts tokens of texts: a tokenizer.json through `tokenizers`, else estimated as characters / 3.6."""

    def __init__(self, tokenizer_file: Path | None) -> None:
        self._tokenizer: Any = None
        self._pieces: _PieceCounts | None = None
        if tokenizer_file is None:
            self.described = f"estimate: characters / {CHARS_PER_TOKEN} (no tokenizer given)"
            return
        from tokenizers import Tokenizer  # Rust, no torch; imported only when asked for

        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as error:  # the library raises a bare Exception for unreadable files
            raise ValueError(f"tokenizer_file: cannot load {tokenizer_file}: {error}; give the model's "
                             "tokenizer.json") from error
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # fast: no offsets
        if pieces_add_up(_config(tokenizer)):
            pieces = _PieceCounts(self.encode_whole)
            self._pieces = pieces if pieces.count(PROBES) == self.encode_whole(PROBES) else None
        self._checked = False
        self.described = f"tokenizer: {tokenizer_file} (message text, without chat-template tokens)"

    @property
    def exact(self) -> bool:
        return self._tokenizer is not None

    def count(self, texts: list[str]) -> list[int]:
        if self._tokenizer is None:
            return [math.ceil(len(text) / CHARS_PER_TOKEN) for text in texts]
        if self._pieces is None:
            return self.encode_whole(texts)
        counts = self._pieces.count(texts)
        if not self._checked:  # the first batch is encoded both ways; any difference turns the shortcut off
            self._checked = True
            whole = self.encode_whole(texts)
            if whole != counts:
                self._pieces = None
                return whole
        return counts

    def encode_whole(self, texts: list[str]) -> list[int]:
        if any(len(text) > CHUNK_CHARS for text in texts):
            return [sum(self._encoded_lengths(_chunks(text))) for text in texts]
        return self._encoded_lengths(texts)

    def _encoded_lengths(self, texts: list[str]) -> list[int]:
        return [len(encoding) for encoding in self._encode(texts, add_special_tokens=False)] if texts else []


def _chunks(text: str) -> list[str]:
    """A long text in pieces of about CHUNK_CHARS, cut before a space: encoding it whole would hold every token's
    offsets at once (~130× the text in memory); cut at spaces, the counts add up as the pieces do."""
    pieces, start = [], 0
    while len(text) - start > CHUNK_CHARS:
        cut = text.rfind(" ", start + 1, start + CHUNK_CHARS)
        cut = cut if cut > start else start + CHUNK_CHARS
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


class _PieceCounts:
    """Token counts of space-separated pieces: `lead` for a text's first piece, `spaced` for " " + piece."""

    def __init__(self, encode: Any) -> None:
        self.encode = encode
        self.lead: dict[str, int] = {}
        self.spaced: dict[str, int] = {}

    def count(self, texts: list[str]) -> list[int]:
        if len(self.spaced) > CACHE_PIECES:
            self.lead.clear()
            self.spaced.clear()
        split: list[list[str] | None] = []
        pieces_seen: set[str] = set()
        for text in texts:
            if "  " in text or "\n " in text or _RARE_WHITESPACE_THEN_SPACE.search(text):
                split.append(None)
                continue
            pieces = text.split(" ")
            split.append(pieces)
            pieces_seen.update(pieces)  # the first piece too: it makes the sums simpler
        lead = list({pieces[0] for pieces in split if pieces is not None}.difference(self.lead))
        spaced = list(pieces_seen.difference(self.spaced))
        whole = [text for text, pieces in zip(texts, split, strict=True) if pieces is None]
        counts = self.encode([*lead, *(" " + piece for piece in spaced), *whole])
        self.lead.update(zip(lead, counts, strict=False))
        self.spaced.update(zip(spaced, counts[len(lead):], strict=False))
        whole_counts = iter(counts[len(lead) + len(spaced):])
        lead_of, spaced_of = self.lead, self.spaced
        return [next(whole_counts) if pieces is None
                else lead_of[pieces[0]] + sum(map(spaced_of.__getitem__, pieces)) - spaced_of[pieces[0]]
                for pieces in split]


def _config(tokenizer: Any) -> dict[str, Any]:
    """The parts of a tokenizer's JSON that pieces_add_up looks at (the whole file's vocab is not parsed again)."""
    def state(component: Any) -> Any:
        return None if component is None else json.loads(component.__getstate__())

    try:
        added = [{"content": token.content, "lstrip": token.lstrip, "rstrip": token.rstrip,
                  "single_word": token.single_word} for token in tokenizer.get_added_tokens_decoder().values()]
        return {"normalizer": state(tokenizer.normalizer), "pre_tokenizer": state(tokenizer.pre_tokenizer),
                "added_tokens": added}
    except (AttributeError, TypeError, ValueError):  # an older library without these: no shortcut
        return {}


def pieces_add_up(config: dict[str, Any]) -> bool:
    """Whether a tokenizer.json keeps "a space after a non-space starts a pre-token" (see the module doc)."""
    if not config:
        return False
    if not _parts_ok(config.get("normalizer"), lambda part: part.get("type") in _SAFE_NORMALIZERS):
        return False
    pre = config.get("pre_tokenizer")
    if pre is None or not _parts_ok(pre, _pre_tokenizer_ok):
        return False  # no pre-tokenizer: BPE merges may span spaces
    parts = (pre.get("pretokenizers") or []) if pre.get("type") == "Sequence" else [pre]
    if not any(_splits(part) for part in parts):
        return False
    for token in config.get("added_tokens") or []:  # stripping added tokens eat the spaces around them
        if any(token.get(flag) for flag in ("lstrip", "rstrip", "single_word")) or " " in token.get("content", ""):
            return False
    return True


def _pre_tokenizer_ok(part: dict[str, Any]) -> bool:
    kind = part.get("type")
    if kind == "ByteLevel":
        return not part.get("add_prefix_space", True)
    if kind == "Split":
        return part.get("behavior") in ("Isolated", "Removed") and not part.get("invert", False)
    return kind in _SAFE_PRE_TOKENIZERS


def _splits(part: dict[str, Any]) -> bool:
    if part.get("type") == "ByteLevel":
        return bool(part.get("use_regex", True))
    return part.get("type") in ("Split", "Whitespace", "WhitespaceSplit", "BertPreTokenizer")


def _parts_ok(component: Any, accept: Any) -> bool:
    """None passes; a Sequence passes when every part does."""
    if component is None:
        return True
    if not isinstance(component, dict):
        return False
    if component.get("type") == "Sequence":
        parts = component.get("normalizers") or component.get("pretokenizers") or []
        return all(isinstance(part, dict) and accept(part) for part in parts)
    return bool(accept(component))
