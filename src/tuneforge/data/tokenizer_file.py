"""A model directory's tokenizer through the Rust `tokenizers` library alone, for the API process (no transformers).

`FastTokenizer` offers the part of a Hugging Face tokenizer that tuneforge's templates and tokenisation use
(`encode`, `eos_token_id`, `apply_chat_template`, what `fix_tokenizer` touches), loaded from the same files
transformers reads: tokenizer.json, tokenizer_config.json, special_tokens_map.json and chat_template.jinja. It
adds the declared special tokens and renders chat templates the way transformers 5 does, so a dataset preview
shows the token ids training will see; tests compare both on real tokenizers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Tokenizer
from tokenizers.decoders import DecodeStream

# The named special tokens transformers passes to chat templates (its SPECIAL_TOKENS_ATTRIBUTES).
NAMED_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
TOKENIZER_FILE = "tokenizer.json"


class TokenizerFileError(ValueError):
    """The model directory has no usable tokenizer files."""


class ChatTemplateError(ValueError):
    """The chat template refused the conversation (its raise_exception) or is not valid Jinja."""


class FastTokenizer:
    """A `tokenizers.Tokenizer` plus the special tokens and chat template of its model directory."""

    def __init__(
        self,
        backend: Tokenizer,
        special_tokens: dict[str, str] | None = None,
        chat_template: str | dict[str, str] | None = None,
    ) -> None:
        self._backend = backend
        self._special = {key: value for key, value in (special_tokens or {}).items() if value}
        self.chat_template = chat_template
        self._shared = False  # set by copy(): the backend is cloned before the first change

    @classmethod
    def from_dir(cls, path: str | Path) -> FastTokenizer:
        """Load the tokenizer files of a model directory (what AutoTokenizer.from_pretrained(path) reads)."""
        folder = Path(path)
        file = folder / TOKENIZER_FILE
        if not file.is_file():
            raise TokenizerFileError(f"tokenizer: no {TOKENIZER_FILE} in {folder}; the dataset preview needs a fast "
                                     "tokenizer (save the model's tokenizer with transformers to create one)")
        try:
            backend = Tokenizer.from_file(str(file))
        except Exception as error:  # the Rust side raises plain Exception for bad files
            raise TokenizerFileError(f"tokenizer: cannot read {file}: {error}") from error
        config = _read_json(folder / "tokenizer_config.json")
        special, extra = _special_tokens(config, folder)
        backend.encode_special_tokens = bool(config.get("split_special_tokens", False))
        _register_special_tokens(backend, config, special, extra)
        return cls(backend, special, _chat_template(folder, config))

    # --- the tokenizer surface templates.py and tokenize.py use -------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self._backend.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def decode_pieces(self, ids: Iterable[int]) -> list[str]:
        """The text each token adds, in order; joined they equal decode(ids). A token that ends inside a
        multi-byte character adds "" and the next one adds the whole character."""
        stream = DecodeStream(skip_special_tokens=False)
        return [stream.step(self._backend, token) or "" for token in ids]

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | list[str | None] | None:
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        return [self._backend.id_to_token(token) for token in ids]

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int | None] | None:
        if isinstance(tokens, str):
            return self._backend.token_to_id(tokens)
        return [self._backend.token_to_id(token) for token in tokens]

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def add_tokens(self, tokens: Sequence[str], special_tokens: bool = False) -> int:
        """Add tokens as transformers does (special ones are never split nor normalised); returns how many."""
        self._own_backend()
        added = [AddedToken(token, special=special_tokens, normalized=not special_tokens) for token in tokens]
        if special_tokens:
            return self._backend.add_special_tokens(added)
        return self._backend.add_tokens(added)

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """bos_token, eos_token, … (and model-specific *_token entries) as the chat template sees them."""
        return dict(self._special)

    @property
    def bos_token(self) -> str | None:
        return self._special.get("bos_token")

    @property
    def eos_token(self) -> str | None:
        return self._special.get("eos_token")

    @eos_token.setter
    def eos_token(self, value: str | None) -> None:
        self._set_special("eos_token", value)

    @property
    def pad_token(self) -> str | None:
        return self._special.get("pad_token")

    @pad_token.setter
    def pad_token(self, value: str | None) -> None:
        self._set_special("pad_token", value)

    @property
    def unk_token(self) -> str | None:
        return self._special.get("unk_token")

    @property
    def bos_token_id(self) -> int | None:
        return self._token_id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return self._token_id(self.eos_token)

    @property
    def pad_token_id(self) -> int | None:
        return self._token_id(self.pad_token)

    def apply_chat_template(
        self,
        conversation: Sequence[dict[str, Any]],
        tokenize: bool = False,
        add_generation_prompt: bool = False,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> str | list[int]:
        """Render a conversation with the chat template as transformers does (same Jinja sandbox, helpers and
        variables); with tokenize=True the token ids of the text (a plain list, not a BatchEncoding)."""
        source = self._template_source(chat_template)
        if not conversation:
            raise ChatTemplateError("chat template: the conversation is empty; give at least one message")
        messages = [{key: value for key, value in message.items() if value is not None} for message in conversation]
        variables = {**self.special_tokens_map, **kwargs}
        try:
            text = _compile(source).render(messages=messages, tools=None, documents=None,
                                           add_generation_prompt=add_generation_prompt, **variables)
        except jinja2.TemplateError as error:
            raise ChatTemplateError(f"chat template: {error}") from error
        return self.encode(text) if tokenize else text

    def copy(self) -> FastTokenizer:
        """An independent tokenizer sharing the backend until either side adds tokens (copying costs ~nothing)."""
        twin = FastTokenizer(self._backend, dict(self._special), self.chat_template)
        twin._shared = self._shared = True
        return twin

    # --- internals ----------------------------------------------------------------------------------------
    def _own_backend(self) -> None:
        if self._shared:
            self._backend = Tokenizer.from_str(self._backend.to_str())
            self._shared = False

    def _set_special(self, key: str, value: str | None) -> None:
        if value is None:
            self._special.pop(key, None)
            return
        self._special[key] = value  # like transformers, an unknown token is not added here (fix_tokenizer adds it)

    def _token_id(self, token: str | None) -> int | None:
        return None if token is None else self._backend.token_to_id(token)

    def _template_source(self, chat_template: str | None) -> str:
        if chat_template is not None:
            return chat_template
        own = self.chat_template
        if isinstance(own, dict):
            if "default" not in own:
                raise ChatTemplateError(f"chat template: the tokenizer has several ({', '.join(sorted(own))}) and "
                                        "none is called 'default'; choose a named template")
            return own["default"]
        if not own:
            raise ChatTemplateError("chat template: the tokenizer has none; choose a named template")
        return own


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerFileError(f"tokenizer: {path} is not valid JSON ({error}); restore the file") from error
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or a serialised AddedToken."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _special_tokens(config: dict[str, Any], folder: Path) -> tuple[dict[str, str], list[str]]:
    """Named (and model-specific `*_token`) special tokens, and the extra special tokens.

    Like transformers, special_tokens_map.json is only read when the config has no added_tokens_decoder, and
    then it wins over the config."""
    merged = dict(config)
    if "added_tokens_decoder" not in config:
        merged.update(_read_json(folder / "special_tokens_map.json"))
    special: dict[str, str] = {}
    for key, value in merged.items():
        text = _token_text(value)
        if text and (key in NAMED_SPECIAL_TOKENS or key.endswith("_token")):
            special[key] = text
    extra_raw = merged.get("extra_special_tokens") or merged.get("additional_special_tokens") or []
    if isinstance(extra_raw, dict):  # model-specific names ("image_token": "<image>") are named tokens too
        special.update({key: text for key, value in extra_raw.items() if (text := _token_text(value))})
        extra_raw = list(extra_raw.values())
    extra = [text for value in extra_raw if (text := _token_text(value))]
    return special, extra


def _register_special_tokens(
    backend: Tokenizer, config: dict[str, Any], special: dict[str, str], extra: list[str]
) -> None:
    """Declared special tokens that tokenizer.json does not list as added tokens become added special tokens,
    as transformers' TokenizersBackend does on load (so e.g. "<|im_end|>" in text encodes as one token)."""
    known = {token.content for token in backend.get_added_tokens_decoder().values()}
    wanted: list[AddedToken] = []
    for _, raw in sorted((config.get("added_tokens_decoder") or {}).items(), key=lambda item: int(item[0])):
        if isinstance(raw, dict) and raw.get("content") and raw["content"] not in known:
            fields = {key: raw[key] for key in ("single_word", "lstrip", "rstrip", "normalized", "special")
                      if key in raw}
            wanted.append(AddedToken(raw["content"], **fields))
            known.add(raw["content"])
    for text in [*special.values(), *extra]:
        if text not in known:
            wanted.append(AddedToken(text, special=True, normalized=False))
            known.add(text)
    if wanted:
        backend.add_special_tokens([token for token in wanted if token.special])
        backend.add_tokens([token for token in wanted if not token.special])


def _chat_template(folder: Path, config: dict[str, Any]) -> str | dict[str, str] | None:
    """chat_template.jinja (and additional_chat_templates/*.jinja) win over tokenizer_config.json's entry, as in
    transformers; several templates come back as a dict by name."""
    templates: dict[str, str] = {}
    single = folder / "chat_template.jinja"
    if single.is_file():
        templates["default"] = single.read_text(encoding="utf-8")
    extra_dir = folder / "additional_chat_templates"
    if extra_dir.is_dir():
        for file in sorted(extra_dir.glob("*.jinja")):
            templates[file.name.removesuffix(".jinja")] = file.read_text(encoding="utf-8")
    if not templates:
        legacy = _read_json(folder / "chat_template.json").get("chat_template")
        return _config_template(config.get("chat_template", legacy))
    if list(templates) == ["default"]:
        return templates["default"]
    return templates


def _config_template(value: Any) -> str | dict[str, str] | None:
    if isinstance(value, list):  # [{"name": ..., "template": ...}, ...]
        return {item["name"]: item["template"] for item in value if isinstance(item, dict) and "name" in item}
    return value if isinstance(value, str) else None


# --- the Jinja sandbox (the same environment, filters and globals a Hugging Face chat template expects) -----


class _GenerationBlock(Extension):
    """`{% generation %}…{% endgeneration %}` marks assistant text for transformers' assistant masks; rendering
    only needs its body."""

    tags: ClassVar[set[str]] = {"generation"}

    def parse(self, parser: Any) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _SafeNamespace(jinja2.utils.Namespace):
    """namespace() that refuses underscore names, so a template cannot reach Python internals through it."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # Jinja's own signature trick: `self` may be a kwarg
        self, rest = args[0], args[1:]
        attributes = dict(*rest, **kwargs)
        for name in attributes:
            _SafeNamespace._check(name)
        jinja2.utils.Namespace.__init__(self, attributes)

    def __setitem__(self, name: str, value: Any) -> None:
        _SafeNamespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"namespace attribute {name!r} is not allowed")


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Jinja's built-in tojson escapes HTML characters and sorts keys; chat templates expect plain JSON
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationBlock, "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now, namespace=_SafeNamespace)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise ChatTemplateError(f"chat template: invalid Jinja at line {error.lineno}: {error.message}") from error
