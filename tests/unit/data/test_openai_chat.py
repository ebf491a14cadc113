"""OpenAI's chat format as tuneforge trains it (formatting "openai"): weights, tools and tool calls, developer
messages, text parts, its preference shape; and a file the Files API's checks pass is a valid dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data.formats import RecordFormat, convert_object
from tuneforge.data.openai_files import FORMAT_PURPOSES, check_openai_file
from tuneforge.data.records import ChatRecord, PreferenceRecord, PromptRecord
from tuneforge.data.tokenize import IGNORE_INDEX, encode_chat
from tuneforge.data.tokenize_pairs import encode_pair, encode_prompt
from tuneforge.data.validation import validate_dataset

OPENAI = RecordFormat("openai")
CALL = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Today's weather",
                                            "parameters": {"type": "object"}}}]


def read(obj: dict, kind: str = "chat"):
    record, problems = convert_object(obj, OPENAI, "f.jsonl", 1, kind)  # type: ignore[arg-type]
    assert not problems, problems
    return record


def trained_text(tokenizer, sample) -> str:
    return tokenizer.decode([t for t, label in zip(sample.input_ids, sample.labels, strict=True)
                             if label != IGNORE_INDEX])


def test_an_answer_with_weight_0_is_context_not_learned(tokenizer, chatml):
    record = read({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bad answer.",
                                                                      "weight": 0},
                                {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Hello!"}]})
    sample = encode_chat(record, chatml, tokenizer, 512)
    assert trained_text(tokenizer, sample) == "Hello!<|im_end|>\n"
    assert "Bad answer." in tokenizer.decode(sample.input_ids)  # still part of the conversation
    unweighted = encode_chat(read({"messages": [*record_messages(record)]}), chatml, tokenizer, 512)
    assert unweighted.input_ids == sample.input_ids and "Bad answer." in trained_text(tokenizer, unweighted)


def record_messages(record: ChatRecord) -> list[dict]:
    return [{"role": message.role, "content": message.content} for message in record.messages]


def test_tools_reach_the_system_text_and_calls_are_answers(tokenizer, chatml):
    record = read({"tools": TOOLS, "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [CALL, {**CALL, "id": "c2"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "warm"},
        {"role": "assistant", "content": "Sunny and warm."}]})
    assert isinstance(record, ChatRecord)
    assert record.system == "Be brief."
    assert [m.role for m in record.messages] == ["user", "function", "observation", "assistant"]
    assert record.messages[2].content == "sunny\nwarm"  # parallel results: one observation
    call = json.loads(record.messages[1].content.splitlines()[0])
    assert call == {"name": "weather", "arguments": {"city": "Paris"}}
    text = tokenizer.decode(encode_chat(record, chatml, tokenizer, 2048).input_ids)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    signatures = text.split("<tools>\n")[1].split("\n</tools>")[0]
    assert json.loads(signatures) == TOOLS[0]
    trained = trained_text(tokenizer, encode_chat(record, chatml, tokenizer, 2048))
    assert '"city": "Paris"' in trained and "Sunny and warm." in trained


def test_openai_preference_pairs_encode_like_any_pair(tokenizer, chatml):
    record = read({"input": {"messages": [{"role": "user", "content": "Capital of France?"}]},
                   "preferred_output": [{"role": "assistant", "content": "Paris."}],
                   "non_preferred_output": [{"role": "assistant", "content": "Lyon."}]}, "preference")
    assert isinstance(record, PreferenceRecord)
    pair = encode_pair(record, chatml, tokenizer, 512)
    assert tokenizer.decode(pair.chosen_ids) == "Paris.<|im_end|>\n"
    assert tokenizer.decode(pair.rejected_ids) == "Lyon.<|im_end|>\n"
    assert tokenizer.decode(pair.prompt_ids).endswith("<|im_start|>assistant\n")


def test_a_reinforcement_prompt_keeps_its_row_for_graders(tokenizer, chatml):
    row = {"messages": [{"role": "user", "content": "2 + 2?"}], "reference_answer": "4"}
    record = read(row, "prompt")
    assert isinstance(record, PromptRecord) and record.item["reference_answer"] == "4"
    assert encode_prompt(record, chatml, tokenizer, 512).prompt.endswith("<|im_start|>assistant\n")


def test_weights_belong_to_chat_examples_only():
    _, problems = convert_object({"messages": [{"role": "user", "content": "q"},
                                               {"role": "assistant", "content": "a", "weight": 1},
                                               {"role": "user", "content": "again"}]}, OPENAI, "f.jsonl", 3, "prompt")
    assert [(p.line, p.field) for p in problems] == [(3, "messages[1].weight")]


EXAMPLES = {
    "chat": {"tools": TOOLS, "messages": [{"role": "user", "content": "Weather?"},
                                          {"role": "assistant", "content": None, "tool_calls": [CALL]},
                                          {"role": "tool", "content": "sunny"},
                                          {"role": "assistant", "content": "Sunny.", "weight": 1}]},
    "preference": {"input": {"messages": [{"role": "user", "content": "q"}]},
                   "preferred_output": [{"role": "assistant", "content": "good"}],
                   "non_preferred_output": [{"role": "assistant", "content": "bad"}]},
    "reinforcement": {"messages": [{"role": "developer", "content": "d"}, {"role": "user", "content": "q"}],
                      "reference_answer": "a"},
}


@pytest.mark.parametrize("file_format", list(EXAMPLES))
def test_a_file_that_passes_the_checks_is_a_valid_dataset(tmp_path: Path, file_format: str):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(EXAMPLES[file_format]) for _ in range(3)) + "\n", encoding="utf-8")
    verdict = check_openai_file(path)
    assert verdict.ok and verdict.format == file_format
    report = validate_dataset([path], formatting="openai", purpose=FORMAT_PURPOSES[file_format])
    assert report.valid, report.problems
    assert report.rows_ok == 3


def test_a_bad_openai_preference_line_in_a_dataset_names_its_own_field(tmp_path: Path):
    """"input" is an alpaca column elsewhere; in an openai dataset it is the prompt, not a sign of mixed formats."""
    bad = {**EXAMPLES["preference"], "preferred_output": []}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(EXAMPLES["preference"]) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    report = validate_dataset([path], formatting="openai", purpose="preference")
    assert [(p.line, p.field) for p in report.problems] == [(2, "preferred_output")]
