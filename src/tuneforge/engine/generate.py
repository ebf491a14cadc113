"""Chat with a model (base, or base + adapter) in this process: the template used in training applied exactly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneforge.engine.errors import EngineError
from tuneforge.engine.models import loadable, resolve_model_source
from tuneforge.engine.outputs import stop_token_ids

log = logging.getLogger(__name__)


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    repetition_penalty: float = 1.0


@dataclass
class ChatModel:
    model: Any
    tokenizer: Any
    template: Any
    system: str | None = None
    stop_ids: list[int] = field(default_factory=list)

    def prompt_ids(self, messages: list[dict[str, str]], system: str | None = None) -> list[int]:
        from tuneforge.data.records import Message

        msgs = [Message(role=m["role"], content=m["content"]) for m in messages if m["role"] != "system"]
        sys_prompt = next((m["content"] for m in messages if m["role"] == "system"), None)
        system = sys_prompt if sys_prompt is not None else (system if system is not None else self.system)
        text = self.template.render_prompt(msgs, system=system)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def chat(self, messages: list[dict[str, str]], settings: GenerationSettings | None = None,
             system: str | None = None) -> str:
        return "".join(self.stream(messages, settings, system))

    def stream(self, messages: list[dict[str, str]], settings: GenerationSettings | None = None,
               system: str | None = None) -> Iterator[str]:
        import threading

        import torch
        from transformers import TextIteratorStreamer

        settings = settings or GenerationSettings()
        ids = torch.tensor([self.prompt_ids(messages, system)], device=self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = {
            "input_ids": ids, "attention_mask": torch.ones_like(ids), "max_new_tokens": settings.max_new_tokens,
            "eos_token_id": self.stop_ids, "pad_token_id": self.tokenizer.pad_token_id, "streamer": streamer,
            "repetition_penalty": settings.repetition_penalty,
        }
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        thread = threading.Thread(target=self._generate, kwargs=kwargs, daemon=True)
        thread.start()
        yield from streamer
        thread.join()

    def _generate(self, **kwargs: Any) -> None:
        import torch

        with torch.inference_mode():
            self.model.generate(**kwargs)


def load_chat_model(model: str, adapter: str | None = None, template: str | None = None,
                    system: str | None = None) -> ChatModel:
    """A base model by name / path / 'bundled', optionally with a tuneforge (or peft) adapter directory on top."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.data.templates import fix_tokenizer, get_template

    trained = _trained_config(adapter) if adapter else {}
    source = loadable(resolve_model_source(model))
    tokenizer_dir = adapter if adapter and Path(adapter, "tokenizer_config.json").is_file() else source.path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, gguf_file=None if adapter else source.gguf_file)
    chosen = get_template(template or trained.get("template"), tokenizer)
    fix_tokenizer(tokenizer, chosen)
    lm = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file, dtype="auto")
    if adapter:
        from peft import PeftModel

        if not Path(adapter, "adapter_config.json").is_file():
            raise EngineError(f"{adapter} is not an adapter directory (no adapter_config.json)",
                              hint="give the output_dir of a LoRA run, or load a full model with --model")
        if len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
            lm.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
        lm = PeftModel.from_pretrained(lm, adapter)
    lm.eval()
    if system is None:
        system = trained.get("default_system")
    return ChatModel(lm, tokenizer, chosen, system, stop_token_ids(tokenizer, chosen))


def _trained_config(adapter: str) -> dict[str, Any]:
    """The template and system prompt the adapter was trained with, so chat formats prompts the same way."""
    path = Path(adapter) / "training_args.yaml"
    if path.is_file():
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {}
