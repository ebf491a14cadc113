"""Reading dataset files: every format, and problems that name file:line:field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data.formats import RecordFormat
from tuneforge.data.reading import read_records, validate_file
from tuneforge.data.records import ChatRecord, DatasetError, DatasetProblem, Message, TextRecord


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    return path


def problem_strings(error: DatasetError) -> list[str]:
    return [str(problem) for problem in error.problems]


def test_alpaca_with_input_system_and_history(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{
        "instruction": "Translate", "input": "good morning", "output": "Bonjour", "system": "Be exact.",
        "history": [["Hi", "Hello"]],
    }])
    (record,) = read_records(path)
    assert record == ChatRecord(
        [Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Translate\ngood morning"),
         Message("assistant", "Bonjour")], "Be exact.", f"{path}:1")


def test_sharegpt_and_openai_styles_are_detected(tmp_path):
    sharegpt = write_jsonl(tmp_path / "s.jsonl", [{"conversations": [
        {"from": "system", "value": "S"}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}])
    openai = write_jsonl(tmp_path / "o.jsonl", [{"messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"}]}])
    expected = [Message("user", "Q"), Message("assistant", "A")]
    for path in (sharegpt, openai):
        (record,) = read_records(path)
        assert record.messages == expected and record.system == "S"


def test_custom_columns_and_tags(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"dialog": [{"speaker": "me", "text": "Q"},
                                                          {"speaker": "bot", "text": "A"}]}])
    fmt = RecordFormat("sharegpt", {"messages": "dialog"},
                       {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"})
    (record,) = read_records(path, fmt)
    assert record.messages == [Message("user", "Q"), Message("assistant", "A")]


def test_text_for_pretraining(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "Some document."}])
    assert read_records(path, kind="text") == [TextRecord("Some document.", f"{path}:1")]


def test_jsonl_problems_name_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"instruction": "ok", "output": "fine"}\n'
        '\n'
        '{"instruction": "x" "output": "y"}\n'
        '{"instruction": "no answer"}\n'
        '{"instruction": "empty", "output": "  "}\n'
        '{"instruction": 3, "output": "y"}\n'
        '[1, 2]\n', encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_records(path)
    found = problem_strings(caught.value)
    assert found[0].startswith(f"{path}:3: invalid JSON at column 21")
    assert found[1].startswith(f"{path}:4: output: missing field")
    assert found[2].startswith(f"{path}:5: output: empty response")
    assert found[3] == f"{path}:6: instruction: expected a string, got int"
    assert found[4] == f"{path}:7: expected a JSON object, got list"
    assert str(caught.value).startswith("5 problem(s)")


def test_pretty_printed_json_reports_the_line_where_the_object_starts(tmp_path):
    path = tmp_path / "pretty.json"
    rows = [{"instruction": "ok", "output": "fine"}, {"instruction": "bad", "output": ""},
            {"instruction": "ok", "output": "fine"}, {"instruction": "missing"}]
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    report = validate_file(path)
    assert report.records_ok == 2
    # each object takes 4 lines after the opening "[": they start on lines 2, 6, 10, 14
    assert [(p.line, p.field) for p in report.problems] == [(6, "output"), (14, "output")]


def test_broken_json_array_reports_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "a" "output": "b"}\n]')
    with pytest.raises(DatasetError) as caught:
        read_records(path)
    assert problem_strings(caught.value) == [f"{path}:3: invalid JSON at column 23: Expecting ',' delimiter"]


def test_sharegpt_role_order_and_unknown_roles(tmp_path):
    path = write_jsonl(tmp_path / "roles.jsonl", [
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "human", "value": "Q2"}]},
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"},
                           {"from": "human", "value": "Q2"}]},
        {"conversations": [{"from": "system", "value": "S"}, {"from": "robot", "value": "Q"}]},
        {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                           {"from": "gpt", "value": ""}]},
    ])
    report = validate_file(path)
    found = [str(p) for p in report.problems]
    assert found[0].startswith(f"{path}:1: conversations[1]: wrong role order")
    assert found[1].startswith(f"{path}:2: conversations: the conversation must end with an 'gpt' message")
    assert found[2].startswith(f"{path}:3: conversations[1].from: unknown role 'robot'")
    assert found[3].startswith(f"{path}:4: conversations[2]: empty response")


def test_bom_is_tolerated_and_non_utf8_is_reported(tmp_path):
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"instruction": "q", "output": "a"}]).encode())
    assert len(read_records(bom)) == 1
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"instruction": "q", "output": "a"}\n{"instruction": "caf\xe9", "output": "a"}\n')
    with pytest.raises(DatasetError) as caught:
        read_records(latin)
    assert problem_strings(caught.value)[0].startswith(f"{latin}:2: not UTF-8")
    latin_json = tmp_path / "latin.json"
    latin_json.write_bytes(b'[\n{"instruction": "q",\n "output": "caf\xe9"}]')
    with pytest.raises(DatasetError, match=r"latin.json:3: not UTF-8"):
        read_records(latin_json)


def test_error_lists_at_most_twenty_problems(tmp_path):
    path = write_jsonl(tmp_path / "many.jsonl", [{"instruction": "q"} for _ in range(25)])
    with pytest.raises(DatasetError) as caught:
        read_records(path)
    message = str(caught.value)
    assert message.count("missing field") == 20
    assert "… and 5 more" in message
    assert caught.value.total == 25


def test_problem_str_and_undetectable_format(tmp_path):
    assert str(DatasetProblem("f.jsonl", 3, "output", "empty")) == "f.jsonl:3: output: empty"
    path = write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DatasetError, match="cannot tell the dataset format"):
        read_records(path)


def test_api_side_modules_do_not_import_torch_or_transformers():
    import subprocess
    import sys

    code = ("import sys, tuneforge.data, tuneforge.data.templates, tuneforge.data.mixing, tuneforge.data.sources;"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
