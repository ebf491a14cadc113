"""What a GPTQ export calibrates on: conversations through the chat template, preference pairs as prompt + chosen
answer, pre-training text as documents, a seeded draw rather than the first rows; a chat dataset with a bad row is
refused naming the line, not read some other way; a model whose experts are not linear layers is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.engine.errors import EngineError

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")


@pytest.fixture()
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_conversations_are_rendered_with_the_chat_template(tokenizer, tmp_path: Path) -> None:
    from tuneforge.engine.export_calibration import calibration_texts

    data = _write(tmp_path / "chat.jsonl", [{"instruction": "Who are you?", "output": "I am Forge."}])
    texts, reading = calibration_texts(str(data), str(tmp_path), tokenizer, 4)
    assert texts == ["<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\nI am Forge.<|im_end|>\n"]
    assert reading.endswith("as conversations")


def test_preference_pairs_calibrate_on_the_prompt_and_the_chosen_answer(tokenizer, tmp_path: Path) -> None:
    from tuneforge.engine.export_calibration import calibration_texts

    data = _write(tmp_path / "pairs.jsonl", [{"instruction": "Capital of France?", "chosen": "Paris.",
                                              "rejected": "Lyon."}])
    texts, reading = calibration_texts(str(data), str(tmp_path), tokenizer, 4)
    assert len(texts) == 1 and "Capital of France?" in texts[0] and "Paris." in texts[0] and "Lyon" not in texts[0]
    assert reading.endswith("as preference pairs")


def test_text_without_answers_calibrates_as_documents(tokenizer, tmp_path: Path) -> None:
    """Plain {"text"} rows, and pre-training text described with columns (LLaMA-Factory's way)."""
    from tuneforge.engine.export_calibration import calibration_texts

    plain = _write(tmp_path / "plain.jsonl", [{"text": "The tide keeps its time."}, {"text": "Waves fold."}])
    texts, reading = calibration_texts(str(plain), str(tmp_path), tokenizer, 4)
    assert sorted(texts) == ["The tide keeps its time.", "Waves fold."] and reading.endswith("as documents")
    folder = tmp_path / "described"
    folder.mkdir()
    _write(folder / "corpus.jsonl", [{"content": "First document."}, {"content": "Second document."}])
    (folder / "dataset_info.json").write_text(json.dumps({"corpus": {"file_name": "corpus.jsonl",
                                                                     "columns": {"prompt": "content"}}}))
    texts, reading = calibration_texts("corpus", str(folder), tokenizer, 4)
    assert sorted(texts) == ["First document.", "Second document."] and reading.endswith("as documents")


def test_a_chat_dataset_with_a_bad_row_is_refused_naming_it(tokenizer, tmp_path: Path) -> None:
    from tuneforge.engine.export_calibration import calibration_texts

    rows = [{"instruction": f"Question {k}?", "output": f"Answer {k}."} for k in range(5)] + [{"instruction": "x"}]
    data = _write(tmp_path / "chat.jsonl", rows)
    with pytest.raises(EngineError) as refused:
        calibration_texts(str(data), str(tmp_path), tokenizer, 10)
    assert str(refused.value).startswith("quantization_dataset: ") and "chat.jsonl:6" in str(refused.value)


def test_samples_are_a_seeded_draw_from_the_whole_dataset(tokenizer, tmp_path: Path) -> None:
    from tuneforge.engine.export_calibration import calibration_texts

    data = _write(tmp_path / "many.jsonl", [{"text": f"document {k}"} for k in range(40)])
    first, _ = calibration_texts(str(data), str(tmp_path), tokenizer, 5)
    again, _ = calibration_texts(str(data), str(tmp_path), tokenizer, 5)
    assert first == again and len(first) == 5
    assert first != [f"document {k}" for k in range(5)]  # not just the first rows


def test_a_model_whose_experts_are_not_linear_layers_is_refused(tmp_path: Path) -> None:
    """transformers keeps a Mixtral block's experts as fused 3-D weights: GPTQ of its linear layers alone would
    leave most of the model in full precision under an int4 label."""
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    from tuneforge.engine.export_gptq import check_quantizable

    torch.manual_seed(0)
    model = MixtralForCausalLM(MixtralConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             num_local_experts=4, num_experts_per_tok=2))
    with pytest.raises(EngineError) as refused:
        check_quantizable(model, 32)
    assert str(refused.value).startswith("quantization_bit: ") and "fused MoE experts" in str(refused.value)


def test_rows_without_answers_or_a_bad_pair_are_refused_not_read_as_documents(tokenizer, tmp_path: Path) -> None:
    """Prompts without answers, or a preference file with one row missing its rejected answer, would calibrate
    on fragments of what the model reads: refused, naming the row."""
    from tuneforge.engine.export_calibration import calibration_texts

    prompts = _write(tmp_path / "prompts.jsonl", [{"instruction": f"Question {k}?"} for k in range(3)])
    pairs = _write(tmp_path / "pairs.jsonl", [{"instruction": "q", "chosen": "C1", "rejected": "R1"},
                                              {"instruction": "q3", "chosen": "C3"}])
    for data, line in ((prompts, "prompts.jsonl:1"), (pairs, "pairs.jsonl:2")):
        with pytest.raises(EngineError) as refused:
            calibration_texts(str(data), str(tmp_path), tokenizer, 10)
        assert str(refused.value).startswith("quantization_dataset: ") and line in str(refused.value), data


def test_a_folder_of_conversations_and_documents_says_both(tokenizer, tmp_path: Path) -> None:
    from tuneforge.engine.export_calibration import calibration_texts

    folder = tmp_path / "mixed"
    folder.mkdir()
    _write(folder / "a.jsonl", [{"instruction": "Hi?", "output": "Hello."}])
    _write(folder / "b.jsonl", [{"text": "A document."}])
    texts, reading = calibration_texts(str(folder), str(tmp_path), tokenizer, 4)
    assert len(texts) == 2 and reading.endswith("as conversations and documents"), reading
