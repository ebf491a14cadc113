"""Dataset formats (alpaca, sharegpt / OpenAI chat, plain text) and their column / tag mapping.

Column and tag names follow the `columns` / `tags` entries of a LLaMA-Factory style dataset_info.json, so an
existing dataset description works unchanged. Each object becomes one canonical record or a list of problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tuneforge.data.records import (
    PROMPT_ROLES,
    RESPONSE_ROLES,
    ChatRecord,
    DatasetProblem,
    Message,
    TextRecord,
)

FORMATTINGS = ("alpaca", "sharegpt", "openai", "text")
RecordKind = Literal["chat", "text"]

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

    def __post_init__(self) -> None:
        if self.formatting not in FORMATTINGS:
            raise ValueError(f"formatting: unknown value {self.formatting!r}; use one of {', '.join(FORMATTINGS)}")

    def column(self, key: str) -> str:
        base = "sharegpt" if self.formatting == "openai" else self.formatting
        return self.columns.get(key) or DEFAULT_COLUMNS[base].get(key, key)


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

    def add(self, field_name: str, reason: str) -> None:
        self.problems.append(DatasetProblem(self.file, self.line, field_name, reason))

    def optional_str(self, obj: dict, key: str) -> str | None:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return value
        self.add(key, f"expected a string, got {type(value).__name__}")
        return None

    def required_str(self, obj: dict, key: str, what: str) -> str | None:
        if key not in obj:
            self.add(key, f"missing field (the {what}); add it or map your column in dataset_info.json 'columns'")
            return None
        return self.optional_str(obj, key)


def convert_object(
    obj: Any, fmt: RecordFormat, file: str, line: int, kind: RecordKind = "chat"
) -> tuple[ChatRecord | TextRecord | None, list[DatasetProblem]]:
    """Turn one parsed JSON object into a record, or return the problems that prevent it."""
    check = _Collector(file, line)
    if not isinstance(obj, dict):
        check.add("", f"expected a JSON object, got {type(obj).__name__}")
        return None, check.problems
    origin = f"{file}:{line}"
    if fmt.formatting == "text":
        record = _text_record(obj, fmt, check, origin)
    elif fmt.formatting == "alpaca":
        record = _alpaca_record(obj, fmt, check, origin, kind)
    else:
        record = _sharegpt_record(obj, fmt, check, origin, kind)
    return (None, check.problems) if check.problems else (record, [])


def _text_record(obj: dict, fmt: RecordFormat, check: _Collector, origin: str) -> TextRecord | None:
    key = fmt.column("prompt")
    text = check.required_str(obj, key, "document text")
    if text is not None and not text.strip():
        check.add(key, "empty text")
    return TextRecord(text, origin) if text else None


def _alpaca_record(
    obj: dict, fmt: RecordFormat, check: _Collector, origin: str, kind: RecordKind
) -> ChatRecord | TextRecord | None:
    prompt_key, query_key, response_key = fmt.column("prompt"), fmt.column("query"), fmt.column("response")
    prompt = check.required_str(obj, prompt_key, "instruction")
    query = check.optional_str(obj, query_key)
    user = "\n".join(part for part in (prompt, query) if part)
    if prompt is not None and not user.strip():
        check.add(prompt_key, f"empty instruction (and no {query_key})")
    if kind == "text":
        return TextRecord(user, origin) if user else None
    response = check.required_str(obj, response_key, "answer to learn")
    if response is not None and not response.strip():
        check.add(response_key, "empty response: the model would learn nothing from this sample")
    system = check.optional_str(obj, fmt.column("system"))
    history = _alpaca_history(obj.get(fmt.column("history")), fmt.column("history"), check)
    if check.problems:
        return None
    messages = [*history, Message("user", user), Message("assistant", response or "")]
    return ChatRecord(messages, system, origin)


def _alpaca_history(value: Any, key: str, check: _Collector) -> list[Message]:
    if value is None:
        return []
    if not isinstance(value, list):
        check.add(key, f"expected a list of [question, answer] pairs, got {type(value).__name__}")
        return []
    messages: list[Message] = []
    for index, pair in enumerate(value):
        ok = isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
        if not ok:
            check.add(f"{key}[{index}]", "expected a [question, answer] pair of two strings")
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


def _sharegpt_record(
    obj: dict, fmt: RecordFormat, check: _Collector, origin: str, kind: RecordKind
) -> ChatRecord | TextRecord | None:
    key = _sharegpt_columns(obj, fmt)
    raw = obj.get(key)
    if raw is None:
        check.add(key, "missing field (the conversation); add it or map your column in dataset_info.json 'columns'")
        return None
    if not isinstance(raw, list) or not raw:
        check.add(key, "expected a non-empty list of messages")
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
    _check_turn_order(messages, key, tags, check, shift)
    tools = obj.get(fmt.column("tools"))
    tools_text = tools if isinstance(tools, str) or tools is None else str(tools)
    return None if check.problems else ChatRecord(messages, system, origin, tools_text)


def _sharegpt_messages(raw: list, key: str, tags: dict[str, str], check: _Collector) -> list[Message]:
    role_of = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["system_tag"]: "system",
               tags["observation_tag"]: "observation", tags["function_tag"]: "function"}
    messages: list[Message] = []
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(item, dict):
            check.add(where, f"expected an object with '{tags['role_tag']}' and '{tags['content_tag']}'")
            continue
        role_value, content = item.get(tags["role_tag"]), item.get(tags["content_tag"])
        if role_value not in role_of:
            known = ", ".join(repr(tag) for tag in role_of)
            check.add(f"{where}.{tags['role_tag']}", f"unknown role {role_value!r}; expected one of {known}")
            continue
        if not isinstance(content, str):
            got = "missing" if content is None else f"a {type(content).__name__}"
            check.add(f"{where}.{tags['content_tag']}", f"expected a string, got {got}")
            continue
        if role_of[role_value] == "system" and index != 0:
            check.add(f"{where}.{tags['role_tag']}", "a system message may only come first")
            continue
        messages.append(Message(role_of[role_value], content))  # type: ignore[arg-type]
    return messages


def _check_turn_order(
    messages: list[Message], key: str, tags: dict[str, str], check: _Collector, shift: int
) -> None:
    """Prompt-side and response-side messages must alternate, starting with the user, ending with the answer.

    `shift` is 1 when a leading system message was taken out, so reported indices match the file.
    """
    if not messages:
        check.add(key, "no user / assistant messages")
        return
    user, assistant = tags["user_tag"], tags["assistant_tag"]
    for index, message in enumerate(messages):
        expected = PROMPT_ROLES if index % 2 == 0 else RESPONSE_ROLES
        if message.role not in expected:
            wanted = f"{user!r} (or observation)" if index % 2 == 0 else f"{assistant!r} (or function call)"
            check.add(f"{key}[{index + shift}]", f"wrong role order: expected {wanted} here; roles must alternate "
                      f"{user} / {assistant} after an optional system message")
            return
    if messages[-1].role not in RESPONSE_ROLES:
        check.add(key, f"the conversation must end with an {assistant!r} message (the answer to learn)")
        return
    for index in range(1, len(messages), 2):
        if not messages[index].content.strip():
            check.add(f"{key}[{index + shift}]", "empty response: the model would learn nothing from this turn")
