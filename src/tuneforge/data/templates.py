"""Chat templates under LLaMA-Factory's names: how a conversation becomes text, and where prompts end.

Torch-free: a template works on any tokenizer object offering `encode(text, add_special_tokens=False)` (and,
for the `tokenizer` template, `apply_chat_template`). Every template can also write itself as a Hugging Face
Jinja chat template, so a trained model's tokenizer formats prompts exactly like training did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuneforge.data.records import Message

QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
_PLACEHOLDER = re.compile(r"\{(content|bos|eos)\}")


@dataclass(frozen=True)
class TemplateSpec:
    """The text around each kind of message; "{content}", "{bos}" and "{eos}" are filled in when rendering.

    A prompt-side message (user / observation) is always followed by `assistant_header` when an answer comes,
    so the prompt of a turn ends exactly where the model starts writing.
    """

    name: str
    user: str
    assistant: str
    assistant_header: str = ""
    system: str = ""  # empty: the system text goes into the first user message (`system_in_user`)
    system_in_user: str = ""
    observation: str = ""
    function: str = ""
    prefix: str = ""
    default_system: str = ""
    stop_words: tuple[str, ...] = ()
    eos_token: str | None = None  # the end-of-turn token generation must stop on (fix_tokenizer makes it eos)
    append_eos: bool = False  # train an eos after each answer although the text does not show it (GLM)
    strip: bool = False  # the model's own template trims message contents



def _chatml(name: str, default_system: str = "", qwen_tools: bool = False) -> TemplateSpec:
    observation = ("<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n" if qwen_tools
                   else "<|im_start|>tool\n{content}<|im_end|>\n")
    function = "<tool_call>\n{content}\n</tool_call><|im_end|>\n" if qwen_tools else "{content}<|im_end|>\n"
    return TemplateSpec(
        name=name,
        system="<|im_start|>system\n{content}<|im_end|>\n",
        user="<|im_start|>user\n{content}<|im_end|>\n",
        assistant_header="<|im_start|>assistant\n",
        assistant="{content}<|im_end|>\n",
        observation=observation,
        function=function,
        default_system=default_system,
        stop_words=("<|im_end|>",),
        eos_token="<|im_end|>",
    )


_SPECS: dict[str, TemplateSpec] = {
    "default": TemplateSpec(
        name="default", system="System: {content}\n", user="Human: {content}\n", assistant_header="Assistant: ",
        assistant="{content}{eos}\n", observation="Observation: {content}\n", function="{content}{eos}\n",
    ),
    "empty": TemplateSpec(name="empty", system="{content}", user="{content}", assistant="{content}{eos}",
                          observation="{content}", function="{content}{eos}"),
    "chatml": _chatml("chatml"),
    "qwen": _chatml("qwen", QWEN_SYSTEM, qwen_tools=True),
    # Qwen3 answers without reasoning are trained as plain ChatML; qwen3_nothink is for the non-thinking models
    "qwen3": _chatml("qwen3", qwen_tools=True),
    "qwen3_nothink": _chatml("qwen3_nothink", qwen_tools=True),
    "smollm2": _chatml("smollm2", SMOLLM_SYSTEM),
    "llama2": TemplateSpec(
        name="llama2", system_in_user="<<SYS>>\n{content}\n<</SYS>>\n\n", user="{bos}[INST] {content} [/INST]",
        assistant=" {content} {eos}", observation="{bos}[INST] {content} [/INST]", function=" {content} {eos}",
        strip=True,
    ),
    "llama3": TemplateSpec(
        name="llama3", prefix="<|begin_of_text|>",
        system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
        user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        assistant_header="<|start_header_id|>assistant<|end_header_id|>\n\n",
        assistant="{content}<|eot_id|>",
        observation="<|start_header_id|>ipython<|end_header_id|>\n\n{content}<|eot_id|>",
        function="{content}<|eot_id|>",
        stop_words=("<|eot_id|>", "<|eom_id|>"), eos_token="<|eot_id|>", strip=True,
    ),
    "mistral": TemplateSpec(
        name="mistral", prefix="{bos}", system_in_user="{content}\n\n", user="[INST] {content} [/INST]",
        assistant="{content}{eos}", observation="[INST] {content} [/INST]", function="{content}{eos}",
    ),
    "chatglm3": TemplateSpec(
        name="chatglm3", prefix="[gMASK]sop", system="<|system|>\n {content}", user="<|user|>\n {content}",
        assistant_header="<|assistant|>", assistant="\n {content}", observation="<|observation|>\n {content}",
        function="\n {content}", stop_words=("<|user|>", "<|observation|>"), append_eos=True,
    ),
    "glm4": TemplateSpec(
        name="glm4", prefix="[gMASK]<sop>", system="<|system|>\n{content}", user="<|user|>\n{content}",
        assistant_header="<|assistant|>", assistant="\n{content}", observation="<|observation|>\n{content}",
        function="\n{content}", stop_words=("<|user|>", "<|observation|>", "<|endoftext|>"), append_eos=True,
    ),
}
ALIASES = {"qwen2": "qwen"}
TEMPLATE_NAMES: tuple[str, ...] = (*_SPECS, "qwen2", "tokenizer", "auto")


class UnknownTemplate(ValueError):
    pass


@dataclass(frozen=True)
class ChatTemplate:
    """A template bound to one tokenizer's bos / eos text."""

    spec: TemplateSpec
    bos_text: str = ""
    eos_text: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def default_system(self) -> str:
        return self.spec.default_system

    @property
    def stop_words(self) -> list[str]:
        words = list(self.spec.stop_words)
        if self.eos_text and self.eos_text not in words:
            words.append(self.eos_text)
        return words

    def _fill(self, text: str, content: str = "") -> str:
        """One substitution pass, so a message that itself contains "{eos}" stays as written."""
        values = {"content": content, "bos": self.bos_text, "eos": self.eos_text}
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)

    def turn_texts(
        self, messages: Sequence[Message], system: str | None = None, add_generation_prompt: bool = False
    ) -> list[tuple[str, str]]:
        """(prompt text, response text) per turn; a trailing prompt without answer gets an empty response."""
        system, messages = split_system(messages, system, self.spec.default_system)
        spec = self.spec
        turns: list[tuple[str, str]] = []
        prompt = self._fill(spec.prefix)
        if system and spec.system:
            prompt += self._fill(spec.system, _clean(system, spec.strip))
        for index, message in enumerate(messages):
            content = _clean(message.content, spec.strip)
            if message.role in ("user", "observation"):
                if index == 0 and system and not spec.system:
                    content = self._fill(spec.system_in_user, _clean(system, spec.strip)) + content
                prompt += self._fill(getattr(spec, message.role), content)
                if index + 1 < len(messages) or add_generation_prompt:
                    prompt += self._fill(spec.assistant_header)
            else:
                turns.append((prompt, self._fill(getattr(spec, message.role), content)))
                prompt = ""
        if prompt:
            turns.append((prompt, ""))
        return turns

    def render(self, messages: Sequence[Message], system: str | None = None,
               add_generation_prompt: bool = False) -> str:
        """The full text of a conversation, as the Jinja from `to_jinja` renders it."""
        return "".join(p + r for p, r in self.turn_texts(messages, system, add_generation_prompt))

    def render_prompt(self, messages: Sequence[Message], system: str | None = None) -> str:
        """Text for generation: the conversation so far, ending with the assistant header."""
        return self.render(messages, system, add_generation_prompt=True)

    def encode_turns(
        self, tokenizer: Any, messages: Sequence[Message], system: str | None = None
    ) -> list[tuple[list[int], list[int]]]:
        """(prompt_ids, response_ids) per answer (assistant or function message), in the messages' order, so the
        i-th pair belongs to the i-th answer (its `trained` flag); response ids end with the end-of-turn token. A
        trailing prompt without an answer is left out."""
        pairs = []
        eos_id = getattr(tokenizer, "eos_token_id", None)
        answers = sum(1 for message in messages if message.role in ("assistant", "function"))
        for prompt, response in self.turn_texts(messages, system)[:answers]:
            response_ids = _encode(tokenizer, response)
            if response_ids and self.spec.append_eos and eos_id is not None:
                response_ids.append(eos_id)
            pairs.append((_encode(tokenizer, prompt), response_ids))
        return pairs

    def to_jinja(self) -> str:
        """A Hugging Face chat_template that renders the same text as `render`."""
        return spec_to_jinja(self.spec)


class TokenizerChatTemplate(ChatTemplate):
    """The tokenizer's own chat_template; the prompt/response split comes from rendering growing prefixes."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(TemplateSpec(name="tokenizer", user="", assistant=""),
                         getattr(tokenizer, "bos_token", None) or "", getattr(tokenizer, "eos_token", None) or "")
        object.__setattr__(self, "tokenizer", tokenizer)

    @property
    def stop_words(self) -> list[str]:
        return [self.eos_text] if self.eos_text else []

    def _apply(self, messages: list[dict], add_generation_prompt: bool) -> str:
        if not messages:
            return ""
        return self.tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def turn_texts(
        self, messages: Sequence[Message], system: str | None = None, add_generation_prompt: bool = False
    ) -> list[tuple[str, str]]:
        system, messages = split_system(messages, system, "")
        dicts = ([{"role": "system", "content": system}] if system else [])
        dicts += [{"role": _hf_role(m.role), "content": m.content} for m in messages]
        head = len(dicts) - len(messages)
        turns: list[tuple[str, str]] = []
        done = ""
        for index, message in enumerate(messages):
            if message.role in ("assistant", "function"):
                before = self._apply(dicts[: head + index], True)
                after = self._apply(dicts[: head + index + 1], False)
                if not (before.startswith(done) and after.startswith(before)):
                    raise ValueError("template: the tokenizer's chat_template does not render conversations "
                                     "as growing prefixes; choose a named template (e.g. template: qwen)")
                turns.append((before[len(done):], after[len(before):]))
                done = after
        if len(dicts) > head and messages[-1].role not in ("assistant", "function"):
            turns.append((self._apply(dicts, add_generation_prompt)[len(done):], ""))
        return turns

    def to_jinja(self) -> str:
        return self.tokenizer.chat_template  # type: ignore[attr-defined]


def _hf_role(role: str) -> str:
    return {"observation": "tool"}.get(role, role)


def _clean(text: str, strip: bool) -> str:
    return text.strip() if strip else text


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


# The tools a conversation offers go into its system text (as LLaMA-Factory's templates put them), worded as Qwen's
# templates do, whose function turns wrap calls in <tool_call> tags: one JSON function signature a line.
TOOLS_SYSTEM = ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
                "function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>")


def system_with_tools(system: str | None, tools: str | None, default: str) -> str | None:
    """The system text a record is encoded with: its own (None: the template's `default`), then the tools it offers,
    so the model sees the functions its answers call. Without tools, `system` unchanged."""
    if not tools:
        return system
    block = TOOLS_SYSTEM.format(tools=tools)
    base = default if system is None else system
    return f"{base}\n\n{block}" if base else block


def split_system(
    messages: Sequence[Message], system: str | None, default: str
) -> tuple[str, list[Message]]:
    """The system text to use and the remaining messages: a leading system message wins over `system`,
    `system=None` means the template's default, "" means none."""
    messages = list(messages)
    if messages and messages[0].role == "system":
        return messages[0].content, messages[1:]
    return (default if system is None else system), messages


def get_template(name: str | None, tokenizer: Any = None) -> ChatTemplate:
    """The template called `name`; None or "auto" → the tokenizer's own chat template if it has one, else
    `default`; "tokenizer" → the tokenizer's own, which must exist."""
    if name is None or name == "auto":
        name = "tokenizer" if getattr(tokenizer, "chat_template", None) else "default"
    key = ALIASES.get(name, name)
    if key == "tokenizer":
        if not getattr(tokenizer, "chat_template", None):
            raise UnknownTemplate("template: the tokenizer has no chat_template; choose a named template, e.g. "
                                  f"one of {', '.join(_SPECS)}")
        return TokenizerChatTemplate(tokenizer)
    if key not in _SPECS:
        raise UnknownTemplate(f"template: unknown template {name!r}; use one of {', '.join(TEMPLATE_NAMES)}")
    bos = getattr(tokenizer, "bos_token", None) or ""
    eos = _SPECS[key].eos_token or getattr(tokenizer, "eos_token", None) or ""
    return ChatTemplate(_SPECS[key], bos, eos)


def fix_tokenizer(tokenizer: Any, template: ChatTemplate) -> dict[str, Any]:
    """Make the tokenizer fit the template: its end-of-turn token is eos, stop words are single tokens, and a
    pad token exists. Returns what changed (e.g. {"eos_token": "<|im_end|>", "added_tokens": [...]}); when
    tokens were added the model's embeddings must be resized to len(tokenizer)."""
    changes: dict[str, Any] = {}
    wanted = [w for w in (template.spec.eos_token, *template.spec.stop_words) if w]
    vocab = tokenizer.get_vocab()
    missing = [word for word in dict.fromkeys(wanted) if word not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
        changes["added_tokens"] = missing
    eos = template.spec.eos_token
    if eos and tokenizer.eos_token != eos:
        tokenizer.eos_token = eos
        changes["eos_token"] = eos
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        changes["pad_token"] = tokenizer.eos_token
    return changes


def spec_to_jinja(spec: TemplateSpec) -> str:
    """Write the spec as Jinja that mirrors `ChatTemplate.turn_texts` branch for branch."""
    content = "message['content'] | trim" if spec.strip else "message['content']"
    system = "system_message | trim" if spec.strip else "system_message"
    gen = "(add_generation_prompt is defined and add_generation_prompt)"
    header = _jinja_out(spec.assistant_header)
    prompt_tail = f"{{%- if not loop.last or {gen} -%}}{header}{{%- endif -%}}" if header else ""
    merge = ""
    if spec.system_in_user and not spec.system:
        merge = (f"{{%- if loop.first and system_message -%}}{{%- set content = "
                 f"{_jinja_expr(spec.system_in_user, system)} + content -%}}{{%- endif -%}}")
    parts = [
        "{%- if messages and messages[0]['role'] == 'system' -%}",
        "{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}",
        f"{{%- else -%}}{{%- set system_message = {_jinja_string(spec.default_system)} -%}}",
        "{%- set loop_messages = messages -%}{%- endif -%}",
        _jinja_out(spec.prefix),
        f"{{%- if system_message -%}}{_jinja_out(spec.system, system)}{{%- endif -%}}" if spec.system else "",
        "{%- for message in loop_messages -%}",
        f"{{%- set content = {content} -%}}",
        "{%- if message['role'] == 'user' -%}", merge, _jinja_out(spec.user, "content"), prompt_tail,
        "{%- elif message['role'] in ['observation', 'tool'] -%}", merge, _jinja_out(spec.observation, "content"),
        prompt_tail,
        "{%- elif message['role'] == 'function' -%}", _jinja_out(spec.function, "content"),
        "{%- else -%}", _jinja_out(spec.assistant, "content"),
        "{%- endif -%}{%- endfor -%}",
    ]
    return "".join(parts)


def _jinja_expr(text: str, content: str = "''") -> str:
    """"a{content}b{eos}" → '"a" + content + "b" + (eos_token or "")'."""
    values = {"content": content, "bos": "(bos_token or '')", "eos": "(eos_token or '')"}
    pieces = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > last:
            pieces.append(_jinja_string(text[last:match.start()]))
        pieces.append(values[match.group(1)])
        last = match.end()
    if last < len(text):
        pieces.append(_jinja_string(text[last:]))
    return " + ".join(pieces)


def _jinja_out(text: str, content: str = "''") -> str:
    return f"{{{{ {_jinja_expr(text, content)} }}}}" if text else ""


def _jinja_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
