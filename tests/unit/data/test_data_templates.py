"""Chat templates: exact text per template, Jinja export renders the same, tokenizer fixes."""

from __future__ import annotations

import pytest

from tests.fixtures.tiny import build_tokenizer
from tuneforge.data.records import Message
from tuneforge.data.templates import TEMPLATE_NAMES, fix_tokenizer, get_template


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


TWO_TURNS = [Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "2+2?"),
             Message("assistant", "4")]

EXPECTED = {
    "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
              "Hello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
              "\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>",
    "llama2": "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! <|im_end|>"
              "<s>[INST] 2+2? [/INST] 4 <|im_end|>",
    "mistral": "<s>[INST] Be brief.\n\nHi [/INST]Hello!<|im_end|>[INST] 2+2? [/INST]4<|im_end|>",
    "chatglm3": "[gMASK]sop<|system|>\n Be brief.<|user|>\n Hi<|assistant|>\n Hello!<|user|>\n 2+2?<|assistant|>\n 4",
    "glm4": "[gMASK]<sop><|system|>\nBe brief.<|user|>\nHi<|assistant|>\nHello!<|user|>\n2+2?<|assistant|>\n4",
    "default": "System: Be brief.\nHuman: Hi\nAssistant: Hello!<|im_end|>\nHuman: 2+2?\nAssistant: 4<|im_end|>\n",
    "empty": "Be brief.HiHello!<|im_end|>2+2?4<|im_end|>",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_renders_the_models_format(name, tokenizer):
    # the tiny tokenizer's eos is <|im_end|>, so templates that write eos show it
    assert get_template(name, tokenizer).render(TWO_TURNS, "Be brief.") == EXPECTED[name]


def test_default_systems_and_empty_system(tokenizer):
    qwen = get_template("qwen", tokenizer)
    convo = TWO_TURNS[:2]
    assert qwen.render(convo).startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                                         "helpful assistant.<|im_end|>\n<|im_start|>user\nHi")
    assert qwen.render(convo, "").startswith("<|im_start|>user\nHi")
    assert get_template("qwen2", tokenizer).render(convo) == qwen.render(convo)
    smol = get_template("smollm2", tokenizer).render(convo)
    assert "You are a helpful AI assistant named SmolLM, trained by Hugging Face" in smol
    assert get_template("qwen3", tokenizer).render(convo).startswith("<|im_start|>user\n")


def test_render_prompt_ends_with_assistant_header(tokenizer):
    prompt = get_template("llama3", tokenizer).render_prompt([Message("user", "Hi")], "")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert get_template("chatml", tokenizer).render_prompt([Message("user", "Hi")]).endswith(
        "<|im_start|>assistant\n")


CONVERSATIONS = [
    (TWO_TURNS[:2], None),
    (TWO_TURNS, "Be brief."),
    (TWO_TURNS[:3], ""),
    ([Message("user", " padded "), Message("function", "lookup()"), Message("observation", "42"),
      Message("assistant", "It is 42.")], "Use tools."),
    ([Message("user", "你好"), Message("assistant", "你好！\"quoted\" {eos} \\n")], None),
]


@pytest.mark.parametrize("name", [n for n in TEMPLATE_NAMES if n not in ("tokenizer", "auto")])
def test_to_jinja_renders_exactly_like_training(name):
    tokenizer = build_tokenizer()
    template = get_template(name, tokenizer)
    tokenizer.chat_template = template.to_jinja()
    for messages, system in CONVERSATIONS:
        dicts = [{"role": m.role, "content": m.content} for m in messages]
        if system is not None:
            dicts.insert(0, {"role": "system", "content": system})
        for generation in (False, True):
            expected = template.render(messages, system, add_generation_prompt=generation)
            rendered = tokenizer.apply_chat_template(dicts, tokenize=False, add_generation_prompt=generation)
            assert rendered == expected, (name, messages, generation)


def test_encode_turns_splits_prompt_and_answer(tokenizer):
    template = get_template("chatml", tokenizer)
    turns = template.encode_turns(tokenizer, TWO_TURNS, "")
    assert len(turns) == 2
    first_prompt, first_answer = turns[0]
    assert tokenizer.decode(first_prompt) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(first_answer) == "Hello!<|im_end|>\n"
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in first_answer


def test_glm_answers_train_an_eos(tokenizer):
    turns = get_template("glm4", tokenizer).encode_turns(tokenizer, TWO_TURNS[:2], "")
    assert turns[0][1][-1] == tokenizer.eos_token_id


def test_tokenizer_template_uses_the_tokenizers_own_chat_template():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = get_template("chatml", tokenizer).to_jinja()
    auto = get_template(None, tokenizer)
    assert auto.name == "tokenizer"
    named = get_template("chatml", tokenizer)
    assert auto.encode_turns(tokenizer, TWO_TURNS, "Be brief.") == named.encode_turns(tokenizer, TWO_TURNS,
                                                                                       "Be brief.")
    assert auto.render_prompt(TWO_TURNS[:3], "") == named.render_prompt(TWO_TURNS[:3], "")
    assert auto.to_jinja() == tokenizer.chat_template


def test_no_chat_template_falls_back_to_default(tokenizer):
    assert get_template(None, tokenizer).name == "default"
    assert get_template("auto", tokenizer).name == "default"
    with pytest.raises(ValueError, match="has no chat_template"):
        get_template("tokenizer", tokenizer)
    with pytest.raises(ValueError, match=r"unknown template 'qwen9'.*chatml"):
        get_template("qwen9", tokenizer)


def test_fix_tokenizer_sets_end_of_turn_as_eos_and_pad():
    tokenizer = build_tokenizer()
    tokenizer.eos_token = "</s>"
    tokenizer.pad_token = None
    changes = fix_tokenizer(tokenizer, get_template("llama3", tokenizer))
    assert tokenizer.eos_token == "<|eot_id|>"
    assert tokenizer.pad_token == "<|eot_id|>"
    assert set(changes["added_tokens"]) == {"<|eot_id|>", "<|eom_id|>"}
    assert len(tokenizer.encode("<|eot_id|>", add_special_tokens=False)) == 1
    assert fix_tokenizer(tokenizer, get_template("llama3", tokenizer)) == {}


def test_stop_words(tokenizer):
    assert get_template("qwen", tokenizer).stop_words == ["<|im_end|>"]
    assert "<|eot_id|>" in get_template("llama3", tokenizer).stop_words
    assert "<|user|>" in get_template("glm4", tokenizer).stop_words


def test_registry_matches_the_schema_catalog():
    catalog = pytest.importorskip("tuneforge.schemas.catalog")
    names = set(catalog.TEMPLATES) | set(getattr(catalog, "TEMPLATE_AUTO_VALUES", ()))
    assert set(TEMPLATE_NAMES) == names
