"""OpenAI's chat fine-tuning format, read into canonical records (formatting "openai" without custom tags).

Beyond ShareGPT's messages it has: `developer` messages (a system message under a newer name), content as a list of
text parts, an assistant message's `weight` (0: kept as context, not learned), assistant `tool_calls` (and the older
`function_call`), tool results (`tool`, older `function`; the results of parallel calls, several in a row, become one
observation), the `tools` (older `functions`) a conversation offers, and `parallel_tool_calls`. Preference pairs come
in OpenAI's shape, {"input": {"messages": [...]}, "preferred_output": [answer], "non_preferred_output": [answer]}
(older documents name them preferred_completion / non_preferred_completion), or in LLaMA-Factory's (the messages plus
chosen / rejected message objects). A field the templates have no place for is refused, never dropped unseen. Every
problem names its field, e.g. `messages[2].weight`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuneforge.data.records import (
    PROMPT_ROLES,
    RESPONSE_ROLES,
    ChatRecord,
    KTORecord,
    Message,
    PreferenceRecord,
    PromptRecord,
)

if TYPE_CHECKING:
    from tuneforge.data.formats import Record, RecordFormat, RecordKind, _Collector

# The fields each role's message may have; `name` and `tool_call_id` only tie a result to its call.
MESSAGE_FIELDS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content"}), "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "weight", "tool_calls", "function_call"}),
    "tool": frozenset({"role", "content", "tool_call_id"}), "function": frozenset({"role", "content", "name"}),
}
CANONICAL_ROLES = {"system": "system", "developer": "system", "user": "user", "tool": "observation",
                   "function": "observation"}
PREFERENCE_SIDES = (("preferred_output", "preferred_completion"), ("non_preferred_output", "non_preferred_completion"))
PREFERENCE_KEYS = frozenset({"input", *(name for side in PREFERENCE_SIDES for name in side)})
CALL_SHAPE = '{"type": "function", "function": {"name": ..., "arguments": "<JSON text>"}}'
TOOL_SHAPE = '{"type": "function", "function": {"name": ..., "description": ..., "parameters": {...}}}'


def openai_record(obj: dict, fmt: RecordFormat, check: _Collector, origin: str, kind: RecordKind) -> Record | None:
    """One OpenAI example as a record of `kind`; problems go to `check`."""
    if kind == "text":
        check.add("", "an OpenAI chat example is not a pre-training document; choose purpose sft, preference, kto "
                  "or prompt", "unsupported_purpose")
        return None
    if kind == "preference" and not PREFERENCE_KEYS.isdisjoint(obj):
        return _openai_preference(obj, check, origin)
    key = fmt.column("messages")
    if "messages" not in fmt.columns and key not in obj:
        key = "messages"  # OpenAI files say "messages" where ShareGPT says "conversations"
    reader = _Reader(check, weighted=kind == "chat", parallel=_parallel(obj, "", check))
    tools = _tools(obj, fmt.column("tools"), "", check)
    conversation = reader.conversation(obj.get(key), key)
    system = check.optional_str(obj, fmt.column("system"))
    if conversation is None or check.problems:
        return None
    head, messages, where = conversation
    system = head if head is not None else system  # a leading system (developer) message wins, as in ShareGPT
    if kind == "preference":
        reader.order(messages, where, key, ends_with_answer=False)
        chosen, rejected = (reader.reply(obj, fmt.column(side), side) for side in ("chosen", "rejected"))
        if check.problems or chosen is None or rejected is None:
            return None
        return PreferenceRecord(messages, chosen, rejected, system, origin, tools)
    if kind == "prompt":
        if messages and messages[-1].role in RESPONSE_ROLES:  # a final answer is the reference: graders read it
            messages, where = messages[:-1], where[:-1]
        reader.order(messages, where, key, ends_with_answer=False)
        return None if check.problems else PromptRecord(messages, obj, system, origin, tools)
    reader.order(messages, where, key, ends_with_answer=True)
    if kind == "chat" and not check.problems and not any(m.trained for m in messages if m.role in RESPONSE_ROLES):
        check.add(key, "every assistant message has weight 0: give at least one weight 1 (or no weight), else the "
                  "example teaches nothing", "empty_response")
    label = check.label(obj, fmt.column("kto_tag")) if kind == "kto" else None
    if check.problems:
        return None
    if kind == "kto":
        return KTORecord(messages, system, origin, tools, label=bool(label))
    return ChatRecord(messages, system, origin, tools)


def _openai_preference(obj: dict, check: _Collector, origin: str) -> PreferenceRecord | None:
    """{"input": {"messages", "tools", "parallel_tool_calls"}, "preferred_output": [answer], "non_preferred_output":
    [answer]}: the prompt ends with the user's message, each side is a list holding one assistant message."""
    given = obj.get("input")
    source = given if isinstance(given, dict) else {}
    if not isinstance(given, dict):
        check.add("input", 'expected an object like {"messages": [...]} (the prompt both answers reply to)',
                  "missing_field" if given is None else "wrong_type")
    reader = _Reader(check, weighted=False, parallel=_parallel(source, "input.", check))
    tools = _tools(source, "tools", "input.", check)
    conversation = reader.conversation(source.get("messages"), "input.messages") if given is source else None
    chosen, rejected = (reader.side(obj, names) for names in PREFERENCE_SIDES)
    if conversation is None or chosen is None or rejected is None or check.problems:
        return None
    system, messages, where = conversation
    reader.order(messages, where, "input.messages", ends_with_answer=False)
    return None if check.problems else PreferenceRecord(messages, chosen, rejected, system, origin, tools)


def _parallel(obj: dict, prefix: str, check: _Collector) -> bool:
    value = obj.get("parallel_tool_calls", True)
    if isinstance(value, bool):
        return value
    check.add(f"{prefix}parallel_tool_calls", f"expected true or false, got {value!r}", "wrong_type")
    return True


def _tools(obj: dict, key: str, prefix: str, check: _Collector) -> str | None:
    """The functions a conversation offers (`tools`, older `functions`) as one JSON signature a line, the way the
    templates show them in the system text (templates.system_with_tools)."""
    signatures: list[dict[str, Any]] = []
    for field_name, wrapped in ((key, True), ("functions", False)):
        value = obj.get(field_name)
        if value is None:
            continue
        where = f"{prefix}{field_name}"
        if isinstance(value, str) and wrapped:  # LLaMA-Factory's sharegpt keeps tools as JSON text
            try:
                value = json.loads(value)
            except ValueError:
                check.add(where, "not valid JSON: expected a list of tools", "wrong_type")
                continue
        if not isinstance(value, list):
            check.add(where, f"expected a list of tools like {TOOL_SHAPE}", "wrong_type")
            continue
        for index, tool in enumerate(value):
            function = tool.get("function", tool) if isinstance(tool, dict) else None  # both forms: wrapped, bare
            if not isinstance(function, dict) or not isinstance(function.get("name"), str) or \
                    tool.get("type", "function") != "function":
                check.add(f"{where}[{index}]", f"expected a function tool like {TOOL_SHAPE}", "wrong_type")
                continue
            signatures.append({"type": "function", "function": function})
    return "\n".join(json.dumps(signature, ensure_ascii=False) for signature in signatures) or None


@dataclass
class _Reader:
    """Reads the messages of one example. `weighted`: assistant weights count (a supervised chat example);
    `parallel`: an answer may make several tool calls at once."""

    check: _Collector
    weighted: bool
    parallel: bool = True

    def add(self, field_name: str, reason: str, code: str = "invalid") -> None:
        self.check.add(field_name, reason, code)

    def conversation(self, raw: Any, key: str) -> tuple[str | None, list[Message], list[int]] | None:
        """(system text, messages, each message's index in the file) or None after reporting the problems. Tool
        results in a row (parallel calls) become one observation, so turns alternate as the templates need."""
        if raw is None:
            self.add(key, "missing field (the conversation: a list of messages)", "missing_field")
            return None
        if not isinstance(raw, list) or not raw:
            self.add(key, "expected a non-empty list of messages", "wrong_type" if raw else "empty_field")
            return None
        before = len(self.check.problems)
        parsed = [(index, self.message(item, f"{key}[{index}]")) for index, item in enumerate(raw)]
        if len(self.check.problems) > before:
            return None
        system: str | None = None
        messages: list[Message] = []
        where: list[int] = []
        for index, message in parsed:
            assert message is not None  # no problem was reported, so every message was read
            if message.role == "system":
                if messages or system is not None:
                    self.add(f"{key}[{index}].role", "a system (or developer) message may only come first",
                             "role_order")
                    return None
                system = message.content
            elif message.role == "observation" and messages and messages[-1].role == "observation":
                messages[-1] = Message("observation", f"{messages[-1].content}\n{message.content}")
            else:
                messages.append(message)
                where.append(index)
        return system, messages, where

    def message(self, item: Any, where: str) -> Message | None:
        if not isinstance(item, dict):
            self.add(where, "expected a message object with 'role' and 'content'", "wrong_type")
            return None
        role = item.get("role")
        if not isinstance(role, str) or role not in MESSAGE_FIELDS:
            self.add(f"{where}.role", f"unknown role {role!r}; expected one of {', '.join(MESSAGE_FIELDS)}",
                     "unknown_role")
            return None
        for extra in sorted(set(item) - MESSAGE_FIELDS[role]):
            self.add(f"{where}.{extra}", f"not a field tuneforge trains on for a {role} message (it reads "
                     f"{', '.join(sorted(MESSAGE_FIELDS[role]))}); remove it")
        if role == "assistant":
            return self.assistant(item, where)
        for field_name in ("tool_call_id", "name"):
            if field_name in item and not isinstance(item[field_name], str):
                self.add(f"{where}.{field_name}", "expected a string", "wrong_type")
        text = self.text(item.get("content"), f"{where}.content", ("text",))
        return None if text is None else Message(CANONICAL_ROLES[role], text)  # type: ignore[arg-type]

    def assistant(self, item: dict, where: str) -> Message | None:
        """An answer: text, or tool calls (a `function` message, with any text before them)."""
        before = len(self.check.problems)
        learned = self.weight(item, where)
        calls = self.calls(item, where)
        content = item.get("content")
        calling = item.get("tool_calls") is not None or item.get("function_call") is not None
        text = "" if content is None and calling else self.text(content, f"{where}.content", ("text", "refusal"))
        if text is None or len(self.check.problems) > before:
            return None
        if calls:
            return Message("function", f"{text}\n{calls}" if text.strip() else calls, learned)
        return Message("assistant", text, learned)

    def weight(self, item: dict, where: str) -> bool:
        if "weight" not in item:
            return True
        value = item["weight"]
        if not self.weighted:
            self.add(f"{where}.weight", "only the answers of a chat (supervised) example have a weight; remove it")
        elif isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            return value == 1
        else:
            self.add(f"{where}.weight", f"expected 0 (context, not learned) or 1 (learned), got {value!r}")
        return True

    def calls(self, item: dict, where: str) -> str | None:
        """The tool calls as text, one JSON {"name", "arguments"} a line; None when there are none (or bad ones)."""
        calls, legacy = item.get("tool_calls"), item.get("function_call")
        if calls is not None and legacy is not None:
            self.add(where, "give tool_calls or function_call (the older form), not both")
            return None
        if legacy is not None:
            return self.function(legacy, f"{where}.function_call")
        if calls is None:
            return None
        if not isinstance(calls, list) or not calls:
            self.add(f"{where}.tool_calls", f"expected a non-empty list of calls like {CALL_SHAPE}", "wrong_type")
            return None
        if len(calls) > 1 and not self.parallel:
            self.add(f"{where}.tool_calls", f"{len(calls)} calls at once, but the example sets parallel_tool_calls "
                     "to false")
        texts = []
        for index, call in enumerate(calls):
            at = f"{where}.tool_calls[{index}]"
            if not isinstance(call, dict) or call.get("type", "function") != "function":
                self.add(at, f"expected a call like {CALL_SHAPE}", "wrong_type")
                continue
            if "id" in call and not isinstance(call["id"], str):
                self.add(f"{at}.id", "expected a string", "wrong_type")
            texts.append(self.function(call.get("function"), f"{at}.function"))
        return None if None in texts or not texts else "\n".join(text for text in texts if text)

    def function(self, value: Any, where: str) -> str | None:
        if not isinstance(value, dict):
            self.add(where, 'expected {"name": ..., "arguments": "<JSON text>"}', "wrong_type")
            return None
        name, arguments = value.get("name"), value.get("arguments")
        if not isinstance(name, str) or not name:
            self.add(f"{where}.name", "expected the function's name (a non-empty string)", "missing_field")
        if not isinstance(arguments, str):
            self.add(f"{where}.arguments", "expected the arguments as JSON text (a string)", "wrong_type")
            return None
        try:
            parsed = json.loads(arguments)
        except ValueError as error:
            self.add(f"{where}.arguments", f"not valid JSON: {error}")
            return None
        return json.dumps({"name": name, "arguments": parsed}, ensure_ascii=False) if isinstance(name, str) else None

    def text(self, value: Any, where: str, part_types: tuple[str, ...]) -> str | None:
        """A string, or a list of text parts (joined by newlines); images, audio and files cannot be trained."""
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            got = "missing" if value is None else f"a {type(value).__name__}"
            self.add(where, f"expected a string or a list of text parts, got {got}",
                     "missing_field" if value is None else "wrong_type")
            return None
        texts = []
        for index, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in part_types:
                what = f"a {kind!r} part" if isinstance(kind, str) else "this part"
                self.add(f"{where}[{index}]", f"{what} cannot be trained: tuneforge fine-tunes on text; use "
                         '{"type": "text", "text": ...} parts', "wrong_type")
            elif not isinstance(part.get(kind), str):
                self.add(f"{where}[{index}].{kind}", "expected a string", "wrong_type")
            else:
                texts.append(part[kind])
        return "\n".join(texts) if len(texts) == len(value) else None

    def side(self, obj: dict, names: tuple[str, str]) -> Message | None:
        """One side of an OpenAI preference pair: a list holding one assistant message."""
        present = [name for name in names if name in obj]
        if len(present) > 1:
            self.add(names[0], f"give {names[0]} or {names[1]} (the older name), not both")
            return None
        name = present[0] if present else names[0]
        value = obj.get(name)
        if not isinstance(value, list) or len(value) != 1:
            got = ("missing" if value is None else f"a list of {len(value)} messages" if isinstance(value, list)
                   else f"a {type(value).__name__}")
            self.add(name, f"expected a list holding one assistant message, got {got}",
                     "missing_field" if value is None else "wrong_type")
            return None
        return self.answer(value[0], f"{name}[0]")

    def reply(self, obj: dict, key: str, side: str) -> Message | None:
        """LLaMA-Factory's chosen / rejected: an assistant message object."""
        if key not in obj:
            self.add(key, f'missing field (the {side} answer, a message like {{"role": "assistant", "content": '
                     f'"..."}}); add it or map your column with columns.{side}', "missing_field")
            return None
        return self.answer(obj[key], key)

    def answer(self, item: Any, where: str) -> Message | None:
        message = self.message(item, where)
        if message is None:
            return None
        if message.role not in RESPONSE_ROLES:
            self.add(f"{where}.role", f"an answer must be an assistant message, got {item.get('role')!r}",
                     "role_order")
            return None
        if not message.content.strip():
            self.add(f"{where}.content", "empty answer: the comparison teaches nothing", "empty_response")
            return None
        return message

    def order(self, messages: list[Message], where: list[int], key: str, ends_with_answer: bool) -> None:
        """After the system text, user (or tool results) and assistant messages alternate, starting with the user;
        a chat ends with an answer, a prompt (preference, reinforcement) with the user's message."""
        if not messages:
            self.add(key, "no user message: after the system (developer) message the conversation is empty",
                     "empty_field")
            return
        for index, message in enumerate(messages):
            if (message.role in PROMPT_ROLES) != (index % 2 == 0):
                wanted = "a user (or tool) message" if index % 2 == 0 else "an assistant message"
                self.add(f"{key}[{where[index]}].role", f"expected {wanted} here: after an optional system "
                         "(developer) message, user and assistant messages alternate, starting with the user",
                         "role_order")
                return
        if ends_with_answer and messages[-1].role not in RESPONSE_ROLES:
            self.add(key, "the conversation must end with an assistant message (the answer to learn)", "role_order")
        elif not ends_with_answer and messages[-1].role in RESPONSE_ROLES:
            self.add(key, "the prompt must end with the user's (or a tool's) message; the answers are separate",
                     "role_order")
        for index, message in enumerate(messages):
            if message.role in RESPONSE_ROLES and message.trained and not message.content.strip():
                self.add(f"{key}[{where[index]}].content", "empty answer: the model would learn nothing from this "
                         "turn", "empty_response")
