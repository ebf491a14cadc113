"""Dataset formats (alpaca, sharegpt / OpenAI chat, plain text) and their column / tag mapping.

Column and tag names follow the `columns` / `tags` entries of a LLaMA-Factory style dataset_info.json, so an
existing dataset description works unchanged. Each object becomes one canonical record or a list of problems.
The record kind follows the dataset's purpose: sft -> chat, pt -> text, preference (chosen / rejected, LF's
`ranking: true`) -> preference, kto (a boolean `kto_tag`) -> kto, prompt (a prompt to answer plus the row's fields
for graders; a trailing answer is dropped) -> prompt. OpenAI's chat format (formatting "openai" without custom tags:
developer messages, text parts, weights, tool calls, its preference shape) is read by `openai_chat`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from tuneforge.data.openai_chat import openai_record
from tuneforge.data.records import (
    PROMPT_ROLES,
    RESPONSE_ROLES,
    ChatRecord,
    DatasetProblem,
    KTORecord,
    Message,
    PreferenceRecord,
    PromptRecord,
    TextRecord,
)

FORMATTINGS = ("alpaca", "sharegpt", "openai", "text")
RecordKind = Literal["chat", "text", "preference", "kto", "prompt"]
Record = ChatRecord | TextRecord | PreferenceRecord | PromptRecord  # a KTORecord is a ChatRecord with a label

PURPOSES = ("sft", "pt", "preference", "kto", "prompt")
PURPOSE_KINDS: dict[str, RecordKind] = {"sft": "chat", "pt": "text", "preference": "preference", "kto": "kto",
                                        "prompt": "prompt"}
# What each format can hold: ShareGPT conversations cannot be pre-training documents.
FORMAT_PURPOSES: dict[str, tuple[str, ...]] = {
    "alpaca": PURPOSES,
    "sharegpt": ("sft", "preference", "kto", "prompt"),
    "openai": ("sft", "preference", "kto", "prompt"),
    "text": ("pt",),
}

DEFAULT_COLUMNS: dict[str, dict[str, str]] = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
               "history": "history"},
    "sharegpt": {"messages": "conversations", "system": "system", "tools": "tools"},
    "text": {"prompt": "text"},
}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "observation_tag": "tool", "function_tag": "function_call", "system_tag": "system"}


@dataclass(frozen=True)
class RecordFormat:
    """How to read one dataset: its formatting plus the user's column / tag overrides."""

    formatting: str = "alpaca"
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    _resolved: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.formatting not in FORMATTINGS:
            raise ValueError(f"formatting: unknown value {self.formatting!r}; use one of {', '.join(FORMATTINGS)}")

    def column(self, key: str) -> str:
        """The user's field name for a LF column key (looked up once per key: this runs for every record)."""
        name = self._resolved.get(key)
        if name is None:
            base = "sharegpt" if self.formatting == "openai" else self.formatting
            name = self._resolved[key] = self.columns.get(key) or DEFAULT_COLUMNS[base].get(key, key)
        return name


def purpose_kind(purpose: str, formatting: str | None = None) -> RecordKind:
    """The record kind a purpose needs; ValueError names the field when the purpose or the pair is not possible."""
    if purpose not in PURPOSE_KINDS:
        raise ValueError(f"purpose: unknown value {purpose!r}; use one of {', '.join(PURPOSES)}")
    if formatting is not None:
        if formatting not in FORMAT_PURPOSES:
            raise ValueError(f"formatting: unknown value {formatting!r}; use one of {', '.join(FORMATTINGS)}")
        if purpose not in FORMAT_PURPOSES[formatting]:
            hint = " (pre-training needs alpaca records, columns.prompt naming the text)" if purpose == "pt" else ""
            raise ValueError(f"purpose: {formatting} datasets cannot be used for {purpose!r}; they support "
                             f"{', '.join(FORMAT_PURPOSES[formatting])}{hint}")
    return PURPOSE_KINDS[purpose]


def detect_formatting(obj: Any) -> str | None:
    """Guess a file's formatting from its first object (used when no dataset_info.json entry describes it)."""
    if not isinstance(obj, dict):
        return None
    if "conversations" in obj or "messages" in obj:
        return "sharegpt"
    if "instruction" in obj or "output" in obj:
        return "alpaca"
    if "text" in obj:
        return "text"
    return None


class _Collector:
    """Collects the problems of one object, all tagged with its file and line."""

    def __init__(self, file: str, line: int) -> None:
        self.file, self.line = file, line
        self.problems: list[DatasetProblem] = []

    def add(self, field_name: str, reason: str, code: str = "invalid") -> None:
        self.problems.append(DatasetProblem(self.file, self.line, field_name, reason, code))

    def optional_str(self, obj: dict, key: str) -> str | None:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return value
        self.add(key, f"expected a string, got {type(value).__name__}", "wrong_type")
        return None

    def required_str(self, obj: dict, key: str, what: str) -> str | None:
        if key not in obj:
            self.add(key, f"missing field (the {what}); add it or map your column in dataset_info.json 'columns'",
                     "missing_field")
            return None
        return self.optional_str(obj, key)

    def answer(self, obj: dict, key: str, what: str) -> str | None:
        """A response-side string that must not be empty (the model learns it)."""
        text = self.required_str(obj, key, what)
        if text is not None and not text.strip():
            self.add(key, f"empty {what}: the model would learn nothing from this sample", "empty_response")
        return text

    def label(self, obj: dict, key: str) -> bool | None:
        """KTO's human judgement: JSON true (a desirable answer) or false."""
        value = obj.get(key)
        if isinstance(value, bool):
            return value
        if key not in obj:
            self.add(key, "missing field (the KTO label: true for a desirable answer, false for an undesirable "
                     "one); add it or map your column with columns.kto_tag", "missing_label")
        else:
            self.add(key, f"expected true or false (a JSON boolean), got {value!r}", "missing_label")
        return None


def convert_object(
    obj: Any, fmt: RecordFormat, file: str, line: int, kind: RecordKind = "chat"
) -> tuple[Record | None, list[DatasetProblem]]:
    """Turn one parsed JSON object into a record of `kind`, or return the problems that prevent it."""
    check = _Collector(file, line)
    if not isinstance(obj, dict):
        check.add("", f"expected a JSON object, got {type(obj).__name__}", "not_object")
        return None, check.problems
    origin = f"{file}:{line}"
    if fmt.formatting == "text":
        record = _text_record(obj, fmt, check, origin)
    elif fmt.formatting == "alpaca":
        record = _alpaca_record(obj, fmt, check, origin, kind)
    elif fmt.formatting == "openai" and not fmt.tags:  # OpenAI's own role names: its whole format (openai_chat)
        record = openai_record(obj, fmt, check, origin, kind)
    else:
        record = _sharegpt_record(obj, fmt, check, origin, kind)
    return (None, check.problems) if check.problems else (record, [])


def _text_record(obj: dict, fmt: RecordFormat, check: _Collector, origin: str) -> TextRecord | None:
    key = fmt.column("prompt")
    text = check.required_str(obj, key, "document text")
    if text is not None and not text.strip():
        check.add(key, "empty text", "empty_field")
    return TextRecord(text, origin) if text else None


def _alpaca_record(obj: dict, fmt: RecordFormat, check: _Collector, origin: str, kind: RecordKind) -> Record | None:
    prompt_key, query_key = fmt.column("prompt"), fmt.column("query")
    prompt = check.required_str(obj, prompt_key, "instruction")
    query = check.optional_str(obj, query_key)
    user = "\n".join(part for part in (prompt, query) if part)
    if prompt is not None and not user.strip():
        check.add(prompt_key, f"empty instruction (and no {query_key})", "empty_field")
    if kind == "text":
        return TextRecord(user, origin) if user else None
    if kind == "preference":
        answers = [check.answer(obj, fmt.column(side), f"{side} answer") for side in ("chosen", "rejected")]
    elif kind == "prompt":
        answers = []  # the output column, if any, is a reference answer: graders read it from the item
    else:
        answers = [check.answer(obj, fmt.column("response"), "response")]
    label = check.label(obj, fmt.column("kto_tag")) if kind == "kto" else None
    system = check.optional_str(obj, fmt.column("system"))
    history = _alpaca_history(obj.get(fmt.column("history")), fmt.column("history"), check)
    if check.problems:
        return None
    prompt_side = [*history, Message("user", user)]
    if kind == "prompt":
        return PromptRecord(prompt_side, obj, system, origin)
    if kind == "preference":
        chosen, rejected = (Message("assistant", answer or "") for answer in answers)
        return PreferenceRecord(prompt_side, chosen, rejected, system, origin)
    messages = [*prompt_side, Message("assistant", answers[0] or "")]
    if kind == "kto":
        return KTORecord(messages, system, origin, label=bool(label))
    return ChatRecord(messages, system, origin)


def _alpaca_history(value: Any, key: str, check: _Collector) -> list[Message]:
    if value is None:
        return []
    if not isinstance(value, list):
        check.add(key, f"expected a list of [question, answer] pairs, got {type(value).__name__}", "wrong_type")
        return []
    messages: list[Message] = []
    for index, pair in enumerate(value):
        ok = isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
        if not ok:
            check.add(f"{key}[{index}]", "expected a [question, answer] pair of two strings", "wrong_type")
            continue
        messages += [Message("user", pair[0]), Message("assistant", pair[1])]
    return messages


def _sharegpt_columns(obj: dict, fmt: RecordFormat) -> str:
    """The messages column; OpenAI-style files use "messages" where ShareGPT uses "conversations"."""
    key = fmt.column("messages")
    if "messages" not in fmt.columns and key not in obj and "messages" in obj:
        return "messages"
    return key


def _sharegpt_tags(messages: list, fmt: RecordFormat) -> dict[str, str]:
    """ShareGPT tags unless the file uses OpenAI's role/content keys (auto-detected when tags are not given)."""
    base = OPENAI_TAGS if fmt.formatting == "openai" else SHAREGPT_TAGS
    if fmt.formatting == "sharegpt" and not fmt.tags:
        first = messages[0] if messages and isinstance(messages[0], dict) else {}
        if "role" in first and "from" not in first:
            base = OPENAI_TAGS
    return {**base, **fmt.tags}


def _sharegpt_record(obj: dict, fmt: RecordFormat, check: _Collector, origin: str, kind: RecordKind) -> Record | None:
    key = _sharegpt_columns(obj, fmt)
    raw = obj.get(key)
    if raw is None:
        check.add(key, "missing field (the conversation); add it or map your column in dataset_info.json 'columns'",
                  "missing_field")
        return None
    if not isinstance(raw, list) or not raw:
        check.add(key, "expected a non-empty list of messages", "wrong_type" if raw else "empty_field")
        return None
    tags = _sharegpt_tags(raw, fmt)
    messages = _sharegpt_messages(raw, key, tags, check)
    system = check.optional_str(obj, fmt.column("system"))
    shift = 0
    if messages and messages[0].role == "system":
        system, messages, shift = messages[0].content, messages[1:], 1
    if check.problems:
        return None
    if kind == "text":
        return TextRecord(messages[0].content, origin) if messages else None
    tools = obj.get(fmt.column("tools"))
    tools_text = tools if isinstance(tools, str) or tools is None else json.dumps(tools, ensure_ascii=False)
    if kind == "preference":
        return _sharegpt_preference(obj, fmt, check, (messages, system, origin, tools_text), (key, tags, shift))
    if kind == "prompt":
        return _sharegpt_prompt(obj, check, (messages, system, origin, tools_text), (key, tags, shift))
    _check_turn_order(messages, key, tags, check, shift)
    label = check.label(obj, fmt.column("kto_tag")) if kind == "kto" else None
    if check.problems:
        return None
    if kind == "kto":
        return KTORecord(messages, system, origin, tools_text, label=bool(label))
    return ChatRecord(messages, system, origin, tools_text)


def _sharegpt_preference(
    obj: dict, fmt: RecordFormat, check: _Collector, parts: tuple, where: tuple[str, dict[str, str], int]
) -> PreferenceRecord | None:
    """LF's ranking data in sharegpt form: the conversation ends with the prompt, the answers are messages."""
    messages, system, origin, tools = parts
    key, tags, shift = where
    _check_turn_order(messages, key, tags, check, shift, ends_with_answer=False)
    chosen, rejected = (_sharegpt_answer(obj, fmt.column(side), side, tags, check) for side in ("chosen", "rejected"))
    if check.problems or chosen is None or rejected is None:
        return None
    return PreferenceRecord(messages, chosen, rejected, system, origin, tools)


def _sharegpt_prompt(obj: dict, check: _Collector, parts: tuple, where: tuple[str, dict[str, str], int]
                     ) -> PromptRecord | None:
    """A prompt for sampling: the conversation up to its last user turn (a final answer is the reference)."""
    messages, system, origin, tools = parts
    key, tags, shift = where
    if messages and messages[-1].role in RESPONSE_ROLES:
        messages = messages[:-1]
    _check_turn_order(messages, key, tags, check, shift, ends_with_answer=False)
    return None if check.problems else PromptRecord(messages, obj, system, origin, tools)


def _sharegpt_answer(obj: dict, key: str, side: str, tags: dict[str, str], check: _Collector) -> Message | None:
    role_key, content_key, assistant = tags["role_tag"], tags["content_tag"], tags["assistant_tag"]
    shape = f'{{"{role_key}": "{assistant}", "{content_key}": "..."}}'
    value = obj.get(key)
    if value is None:
        check.add(key, f"missing field (the {side} answer, a message like {shape}); add it or map your column "
                  f"with columns.{side}", "missing_field")
        return None
    if not isinstance(value, dict):
        check.add(key, f"expected a message object like {shape}, got {type(value).__name__}", "wrong_type")
        return None
    role = _role_names(tags).get(value.get(role_key))
    if role not in RESPONSE_ROLES:
        check.add(f"{key}.{role_key}", f"an answer must come from {assistant!r} (or {tags['function_tag']!r}), "
                  f"got {value.get(role_key)!r}", "role_order")
        return None
    content = value.get(content_key)
    if not isinstance(content, str):
        got = "missing" if content is None else f"a {type(content).__name__}"
        check.add(f"{key}.{content_key}", f"expected a string, got {got}",
                  "missing_field" if content is None else "wrong_type")
        return None
    if not content.strip():
        check.add(f"{key}.{content_key}", "empty answer: the comparison teaches nothing", "empty_response")
        return None
    return Message(role, content)  # type: ignore[arg-type]


def _role_names(tags: dict[str, str]) -> dict[Any, str]:
    return {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system",
            tags["observation_tag"]: "observation", tags["function_tag"]: "function"}


def _sharegpt_messages(raw: list, key: str, tags: dict[str, str], check: _Collector) -> list[Message]:
    role_of = _role_names(tags)
    messages: list[Message] = []
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(item, dict):
            check.add(where, f"expected an object with '{tags['role_tag']}' and '{tags['content_tag']}'",
                      "wrong_type")
            continue
        role_value, content = item.get(tags["role_tag"]), item.get(tags["content_tag"])
        if not isinstance(role_value, str) or role_value not in role_of:
            known = ", ".join(repr(tag) for tag in role_of)
            check.add(f"{where}.{tags['role_tag']}", f"unknown role {role_value!r}; expected one of {known}",
                      "unknown_role")
            continue
        if not isinstance(content, str):
            got = "missing" if content is None else f"a {type(content).__name__}"
            check.add(f"{where}.{tags['content_tag']}", f"expected a string, got {got}",
                      "missing_field" if content is None else "wrong_type")
            continue
        if role_of[role_value] == "system" and index != 0:
            check.add(f"{where}.{tags['role_tag']}", "a system message may only come first", "role_order")
            continue
        messages.append(Message(role_of[role_value], content))  # type: ignore[arg-type]
    return messages


def _check_turn_order(
    messages: list[Message], key: str, tags: dict[str, str], check: _Collector, shift: int,
    ends_with_answer: bool = True,
) -> None:
    """Prompt-side and response-side messages must alternate, starting with the user and ending with the answer
    (or, for preference data, with the prompt the chosen / rejected answers reply to).

    `shift` is 1 when a leading system message was taken out, so reported indices match the file.
    """
    if not messages:
        check.add(key, "no user / assistant messages", "empty_field")
        return
    user, assistant = tags["user_tag"], tags["assistant_tag"]
    for index, message in enumerate(messages):
        expected = PROMPT_ROLES if index % 2 == 0 else RESPONSE_ROLES
        if message.role not in expected:
            wanted = f"{user!r} (or observation)" if index % 2 == 0 else f"{assistant!r} (or function call)"
            check.add(f"{key}[{index + shift}]", f"wrong role order: expected {wanted} here; roles must alternate "
                      f"{user} / {assistant} after an optional system message", "role_order")
            return
    if ends_with_answer and messages[-1].role not in RESPONSE_ROLES:
        check.add(key, f"the conversation must end with an {assistant!r} message (the answer to learn)",
                  "role_order")
        return
    if not ends_with_answer and messages[-1].role not in PROMPT_ROLES:
        check.add(key, f"a preference conversation must end with a {user!r} message (the prompt); the answers "
                  "go in the chosen / rejected fields", "role_order")
        return
    for index in range(1, len(messages), 2):
        if not messages[index].content.strip():
            check.add(f"{key}[{index + shift}]", "empty response: the model would learn nothing from this turn",
                      "empty_response")
