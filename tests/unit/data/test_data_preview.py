"""Dataset preview: what the console shows as trained is what training trains; the Rust-only tokenizer matches
transformers'."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.data.preview import load_preview, preview_records, render_text
from tuneforge.data.records import ChatRecord, KTORecord, Message, PreferenceRecord, PromptRecord, TextRecord
from tuneforge.data.templates import fix_tokenizer, get_template
from tuneforge.data.tokenize import IGNORE_INDEX, encode_chat
from tuneforge.data.tokenize_pairs import encode_prompt
from tuneforge.data.tokenizer_file import FastTokenizer

SMOLLM_DIR = Path.home() / ".tuneforge" / "models" / "smollm2-135m-instruct"
CHATML_JINJA = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
STRICT_JINJA = (  # refuses a system message, like some models' templates do
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ message['role'] + ': ' + message['content'] + eos_token }}{% endfor %}"
)


def chat(*texts: str, system: str | None = None, origin: str = "d.jsonl:1") -> ChatRecord:
    roles = ["user", "assistant"] * len(texts)
    return ChatRecord([Message(role, text) for role, text in zip(roles, texts, strict=False)], system, origin)


RECORDS = [
    chat("What is the capital of France?", "The capital of France is Paris."),
    chat("Who are you?", "I am Forge.", "Translate to French: good morning.", "Bonjour.", system="Be brief."),
    chat("你好", "你好！我是助手 wörld"),
]


@pytest.fixture(scope="module")
def tokenizer_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's tokenizer files plus a ChatML chat_template.jinja."""
    folder = tmp_path_factory.mktemp("tiny-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_model_dir / name).is_file():
            shutil.copy(tiny_model_dir / name, folder / name)
    (folder / "chat_template.jinja").write_text(CHATML_JINJA)
    return folder


@pytest.fixture(scope="module")
def fast(tokenizer_dir: Path) -> FastTokenizer:
    return FastTokenizer.from_dir(tokenizer_dir)


def trained_texts(preview) -> list[str]:
    return [segment.text for segment in preview.segments if segment.trained]


def model_dirs(tokenizer_dir: Path) -> list[Path]:
    return [tokenizer_dir] + ([SMOLLM_DIR] if (SMOLLM_DIR / "tokenizer.json").is_file() else [])


def test_fast_tokenizer_encodes_and_renders_like_transformers(tokenizer_dir):
    from transformers import AutoTokenizer

    texts = ["<|im_start|>user\nHello <s> wörld 你好</s><|im_end|>\n", "  two  spaces\n\n", "Paris. 1000 Bonjour"]
    for folder in model_dirs(tokenizer_dir):
        ours, theirs = FastTokenizer.from_dir(folder), AutoTokenizer.from_pretrained(folder)
        assert (ours.eos_token, ours.eos_token_id, ours.bos_token, len(ours)) == (
            theirs.eos_token, theirs.eos_token_id, theirs.bos_token, len(theirs))
        for text in texts:
            assert ours.encode(text, add_special_tokens=False) == theirs.encode(text, add_special_tokens=False)
        for record in RECORDS:
            messages = [{"role": m.role, "content": m.content} for m in record.messages]
            if record.system:
                messages.insert(0, {"role": "system", "content": record.system})
            for generation in (False, True):
                assert ours.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation) == \
                    theirs.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def test_chatml_trains_exactly_the_answers_and_their_end_token(fast):
    previews = preview_records(RECORDS, template="chatml", tokenizer=fast, cutoff_len=1024)
    for record, preview in zip(RECORDS, previews, strict=True):
        answers = [m.content + "<|im_end|>\n" for m in record.messages if m.role == "assistant"]
        assert trained_texts(preview) == answers
        assert preview.segments[0].text.startswith("<|im_start|>")
        assert not preview.segments[0].trained and not preview.truncated and preview.error is None
        assert sum(s.tokens for s in preview.segments) == preview.token_count
        assert sum(s.tokens for s in preview.segments if s.trained) == preview.trained_count
    assert previews[1].segments[0].text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_default_template_trains_answers_with_eos(fast):
    [preview] = preview_records(RECORDS[:1], template="default", tokenizer=fast, cutoff_len=1024)
    assert trained_texts(preview) == ["The capital of France is Paris.<|im_end|>\n"]
    assert preview.segments[0].text == "Human: What is the capital of France?\nAssistant: "
    assert json.loads(preview.model_dump_json())["segments"][1]["trained"] is True


def test_train_on_prompt_trains_everything_and_mask_history_only_the_last_answer(fast):
    [everything] = preview_records(RECORDS[1:2], template="chatml", tokenizer=fast, cutoff_len=1024,
                                   train_on_prompt=True)
    assert everything.trained_count == everything.token_count and len(everything.segments) == 1
    [last] = preview_records(RECORDS[1:2], template="chatml", tokenizer=fast, cutoff_len=1024, mask_history=True)
    assert trained_texts(last) == ["Bonjour.<|im_end|>\n"]


def test_record_over_cutoff_len_says_truncated_and_how_much(fast):
    long = chat("Write a haiku about the sea. " * 20, "Waves fold into foam. " * 20)
    [whole] = preview_records([long], template="chatml", tokenizer=fast, cutoff_len=10_000)
    [cut] = preview_records([long], template="chatml", tokenizer=fast, cutoff_len=64)
    assert not whole.truncated and whole.tokens_cut == 0
    assert cut.truncated and cut.token_count <= 64
    assert cut.token_count + cut.tokens_cut == whole.token_count
    assert cut.trained_count > 0


def test_trained_tokens_equal_training_through_transformers(tokenizer_dir):
    """The check that the preview shows exactly what training uses: same ids, same labels, several templates
    (llama3 makes fix_tokenizer add tokens; "tokenizer" renders the chat_template)."""
    from transformers import AutoTokenizer

    for folder in model_dirs(tokenizer_dir):
        fast = FastTokenizer.from_dir(folder)
        for name in ("chatml", "default", "llama3", "tokenizer"):
            hf = AutoTokenizer.from_pretrained(folder)
            template = get_template(name, hf)
            fix_tokenizer(hf, template)
            for options in ({}, {"mask_history": True}, {"train_on_prompt": True}):
                previews = preview_records(RECORDS, template=name, tokenizer=fast, cutoff_len=40, token_view=True,
                                           **options)
                for record, preview in zip(RECORDS, previews, strict=True):
                    sample = encode_chat(record, template, hf, 40, **options)
                    trained = sum(label != IGNORE_INDEX for label in sample.labels)
                    assert (preview.token_count, preview.trained_count) == (len(sample.input_ids), trained)
                    assert [flag for _, flag in preview.tokens] == [lab != IGNORE_INDEX for lab in sample.labels]
                    assert "".join(s.text for s in preview.segments) == hf.decode(sample.input_ids)


def test_preview_leaves_the_callers_tokenizer_unchanged(fast):
    size, eos = len(fast), fast.eos_token
    [preview] = preview_records(RECORDS[:1], template="llama3", tokenizer=fast, cutoff_len=1024)
    assert trained_texts(preview) == ["The capital of France is Paris.<|eot_id|>"]
    assert (len(fast), fast.eos_token) == (size, eos)


def test_pretraining_trains_every_token_and_cuts_only_without_packing(fast):
    doc = TextRecord("The tide keeps its time. " * 30, "book.jsonl:7")
    [packed] = preview_records([doc], template=None, tokenizer=fast, cutoff_len=32, stage="pt")
    [alone] = preview_records([doc], template=None, tokenizer=fast, cutoff_len=32, stage="pt", packing=False)
    assert packed.trained_count == packed.token_count and not packed.truncated
    assert packed.segments[0].text.endswith("<|im_end|>") and len(packed.segments) == 1
    assert alone.truncated and alone.token_count == 32 and alone.tokens_cut == packed.token_count - 32
    assert render_text(doc, template=None, tokenizer=fast) == doc.text + "<|im_end|>"


def test_render_text_is_the_whole_conversation(fast):
    text = render_text(RECORDS[1], template="chatml", tokenizer=fast)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n"
                    "<|im_start|>assistant\nI am Forge.<|im_end|>\n<|im_start|>user\nTranslate to French: good "
                    "morning.<|im_end|>\n<|im_start|>assistant\nBonjour.<|im_end|>\n")
    [preview] = preview_records(RECORDS[1:2], template="chatml", tokenizer=fast, cutoff_len=1024)
    assert "".join(s.text for s in preview.segments) == text


def test_a_record_the_chat_template_refuses_is_reported_not_raised(tokenizer_dir, tmp_path):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, tmp_path / name)
    (tmp_path / "chat_template.jinja").write_text(STRICT_JINJA)
    strict = FastTokenizer.from_dir(tmp_path)
    previews = preview_records([RECORDS[0], RECORDS[1]], template="tokenizer", tokenizer=strict, cutoff_len=99)
    assert previews[0].error is None
    assert trained_texts(previews[0]) == ["assistant: The capital of France is Paris.<|im_end|>"]
    assert "System role not supported" in previews[1].error and previews[1].origin == "d.jsonl:1"


def test_load_preview_reads_only_the_first_valid_records(tmp_path):
    good = {"instruction": "Say hi", "output": "Hi"}
    lines = [json.dumps(good), "{broken", json.dumps({"instruction": "x", "output": ""}), json.dumps(good),
             json.dumps(good), "\x00 never reached"]
    path = tmp_path / "upload-3f2a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded = load_preview([path], 3, names=["train.jsonl"])
    assert [r.origin for r in loaded.records] == ["train.jsonl:1", "train.jsonl:4", "train.jsonl:5"]
    assert [(p.line, p.field) for p in loaded.skipped] == [(2, ""), (3, "output")] and loaded.skipped_total == 2
    second = tmp_path / "more.jsonl"
    second.write_text(json.dumps({"text": "doc"}) + "\n")
    both = load_preview([path, second], 10, stage="pt")
    assert [r.origin for r in both.records][-1] == f"{second}:1" and isinstance(both.records[0], TextRecord)
    with pytest.raises(ValueError, match=r"^n: "):
        load_preview([path], 0)


def test_bad_arguments_name_the_field(fast):
    with pytest.raises(ValueError, match=r"^template: unknown template 'chatmll'"):
        preview_records(RECORDS, template="chatmll", tokenizer=fast, cutoff_len=10)
    with pytest.raises(ValueError, match=r"^stage: "):
        preview_records(RECORDS, template="chatml", tokenizer=fast, cutoff_len=10, stage="dpo")
    with pytest.raises(ValueError, match=r"^cutoff_len: "):
        preview_records(RECORDS, template="chatml", tokenizer=fast, cutoff_len=0)
    with pytest.raises(ValueError, match=r"no tokenizer\.json"):
        FastTokenizer.from_dir(Path("/nonexistent-model"))


def test_preview_imports_neither_torch_nor_transformers():
    code = ("import sys, tuneforge.data.preview, tuneforge.data.tokenizer_file;"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


PAIR = PreferenceRecord([Message("user", "What is the capital of France?")],
                        Message("assistant", "Paris, of course."), Message("assistant", "No idea. Go away."),
                        origin="pairs.jsonl:1")


def texts(segments, trained: bool | None = None) -> str:
    return "".join(s.text for s in segments if trained is None or s.trained == trained)


def test_a_preference_pair_shows_its_prompt_once_and_each_answer_as_training_encodes_it(fast):
    for train_on_prompt in (False, True):  # preference trainers never train on the prompt
        [pair] = preview_records([PAIR], template="chatml", tokenizer=fast, cutoff_len=1024,
                                 train_on_prompt=train_on_prompt)
        assert pair.kind == "preference" and pair.error is None and pair.label is None
        assert texts(pair.segments) == "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n" \
                                       "<|im_start|>assistant\n"
        assert texts(pair.segments, trained=True) == ""
        chosen = texts(pair.chosen.segments)
        assert chosen == texts(pair.chosen.segments, trained=True) == "Paris, of course.<|im_end|>\n"
        assert texts(pair.rejected.segments, trained=True) == "No idea. Go away.<|im_end|>\n"
    template = get_template("chatml", fast.copy())
    for side, answer in ((pair.chosen, PAIR.chosen), (pair.rejected, PAIR.rejected)):
        whole = encode_chat(ChatRecord([*PAIR.messages, answer]), template, fast, 1024)
        assert side.token_count == len(whole.input_ids) and not side.truncated and not side.dropped
        assert side.trained_count == sum(label != IGNORE_INDEX for label in whole.labels)
    assert pair.token_count == pair.chosen.token_count + pair.rejected.token_count


def test_an_earlier_turn_of_a_pair_is_prompt_and_a_long_pair_is_cut_side_by_side(fast):
    history = PreferenceRecord([Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "2 + 2?")],
                               Message("assistant", "4"), Message("assistant", "5"), system="Be brief.")
    [pair] = preview_records([history], template="chatml", tokenizer=fast, cutoff_len=1024)
    assert "Hello!" in texts(pair.segments, trained=False) and texts(pair.chosen.segments) == "4<|im_end|>\n"
    long = PreferenceRecord([Message("user", "The sea?")],
                            Message("assistant", "The sea is wide. " * 30), Message("assistant", "No."))
    [cut] = preview_records([long], template="chatml", tokenizer=fast, cutoff_len=64, token_view=True)
    assert cut.chosen.truncated and cut.chosen.token_count <= 64 and cut.chosen.tokens_cut > 0
    assert not cut.rejected.truncated and cut.truncated and cut.tokens_cut == cut.chosen.tokens_cut
    assert cut.chosen.trained_count > 0 and all(flag for _, flag in cut.chosen.tokens)


def test_a_kto_sample_carries_its_label(fast):
    good = KTORecord([Message("user", "Say thanks."), Message("assistant", "Thank you!")], label=True)
    bad = KTORecord([Message("user", "Say thanks."), Message("assistant", "Whatever.")], label=False)
    previews = preview_records([good, bad], template="chatml", tokenizer=fast, cutoff_len=1024)
    assert [(p.kind, p.label) for p in previews] == [("kto", True), ("kto", False)]
    assert trained_texts(previews[1]) == ["Whatever.<|im_end|>\n"] and previews[0].chosen is None
    assert json.loads(previews[1].model_dump_json())["label"] is False


def test_load_preview_tells_pairs_and_kto_samples_from_their_fields(tmp_path):
    alpaca = tmp_path / "ranking.jsonl"
    alpaca.write_text("".join(json.dumps(row) + "\n" for row in [
        {"instruction": "Greet me.", "input": "", "chosen": "Hello! How can I help?", "rejected": "What now?"},
        {"instruction": "Greet me.", "chosen": "Hi there."},  # no rejected answer
    ]))
    sharegpt = tmp_path / "ranking_sharegpt.jsonl"
    sharegpt.write_text(json.dumps({"conversations": [{"from": "human", "value": "Greet me."}],
                                    "chosen": {"from": "gpt", "value": "Hello!"},
                                    "rejected": {"from": "gpt", "value": "Go away."}}) + "\n")
    kto = tmp_path / "kto.jsonl"
    kto.write_text(json.dumps({"messages": [{"role": "user", "content": "Greet me."},
                                            {"role": "assistant", "content": "Hello!"}], "kto_tag": False}) + "\n")
    loaded = load_preview([alpaca, sharegpt, kto], 10)
    kinds = [type(r).__name__ for r in loaded.records]
    assert kinds == ["PreferenceRecord", "PreferenceRecord", "KTORecord"] and loaded.records[2].label is False
    assert loaded.records[0].messages == [Message("user", "Greet me.")]
    assert [(p.line, p.field) for p in loaded.skipped] == [(2, "rejected")]
    mapped = tmp_path / "mapped.jsonl"
    mapped.write_text(json.dumps({"q": "Greet me.", "good": "Hello!", "bad": "No."}) + "\n")
    [pair] = load_preview([mapped], 1, "alpaca", {"prompt": "q", "chosen": "good", "rejected": "bad"}).records
    assert isinstance(pair, PreferenceRecord) and pair.rejected.content == "No."
    # A purpose named by the caller wins over what the fields suggest.
    assert load_preview([alpaca], 5, purpose="sft").skipped_total == 2
    with pytest.raises(ValueError, match=r"^purpose: "):
        load_preview([alpaca], 5, purpose="ranking")


ROW = {"messages": [{"role": "user", "content": "What is 2 + 2? Answer with the number only."}], "answer": "4",
       "kind": "sum"}


def test_a_prompt_ends_where_sampling_starts_and_carries_the_row_graders_read(fast):
    record = PromptRecord([Message("user", "What is 2 + 2? Answer with the number only.")], ROW, origin="p.jsonl:1")
    [prompt] = preview_records([record], template="chatml", tokenizer=fast, cutoff_len=1024, train_on_prompt=True)
    assert prompt.kind == "prompt" and prompt.error is None and prompt.item == ROW
    assert texts(prompt.segments) == ("<|im_start|>user\nWhat is 2 + 2? Answer with the number only.<|im_end|>\n"
                                      "<|im_start|>assistant\n")
    # nothing of a prompt is trained on (its answers are sampled), yet training keeps it
    assert prompt.trained_count == 0 and not prompt.dropped and not prompt.truncated
    grpo = encode_prompt(record, get_template("chatml", fast.copy()), fast, 1024)  # what GRPO / PPO encode
    assert prompt.token_count == len(grpo.prompt_ids) and texts(prompt.segments) == grpo.prompt


def test_a_long_prompt_loses_its_beginning_as_grpo_cuts_it(fast):
    record = PromptRecord([Message("user", "Count the words: " + "river " * 60)], {"answer": "60"})
    [whole] = preview_records([record], template="chatml", tokenizer=fast, cutoff_len=1024)
    [cut] = preview_records([record], template="chatml", tokenizer=fast, cutoff_len=32, token_view=True)
    assert cut.truncated and cut.token_count == 32 and cut.tokens_cut == whole.token_count - 32
    assert texts(cut.segments).endswith("<|im_start|>assistant\n") and not texts(cut.segments).startswith("<|im")
    assert len(cut.tokens) == 32 and not any(flag for _, flag in cut.tokens)


def test_load_preview_reads_prompts_only_when_the_purpose_says_so(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps({**ROW, "answer": "5"}) + "\n")
    loaded = load_preview([path], 5, purpose="prompt")
    assert [type(r).__name__ for r in loaded.records] == ["PromptRecord", "PromptRecord"]
    assert loaded.records[1].item["answer"] == "5" and loaded.records[0].messages[-1].role == "user"
    # read as SFT data (the default) the same rows lack the answer turn: a prompt file is told by its purpose
    guessed = load_preview([path], 5)
    assert guessed.records == [] and [(p.line, p.field) for p in guessed.skipped] == [(1, "messages"), (2, "messages")]
