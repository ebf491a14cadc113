"""validate_dataset: every problem by file:line:field for each purpose, mapping detection, progress, limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.data.reading import read_records
from tuneforge.data.records import KTORecord, Message, PreferenceRecord
from tuneforge.data.validation import MappingNotDetected, detect_mapping, validate_dataset


def write_lines(path: Path, rows: list) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def where(report) -> list[tuple[int, str, str]]:
    return [(problem.line, problem.field, problem.code) for problem in report.problems]


def sharegpt(*turns: tuple[str, str], **extra) -> dict:
    return {"conversations": [{"from": role, "value": text} for role, text in turns], **extra}


def test_every_kind_of_problem_is_named_by_line_and_field(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join([
        b'\xef\xbb\xbf{"instruction": "q", "output": "a"}',  # 1 BOM: fine
        b'{"instruction": "x" "output": "y"}',  # 2 bad JSON
        b"",  # 3 blank: skipped
        b'{"instruction": "no answer"}',  # 4 missing field
        b'{"instruction": "q", "output": "   "}',  # 5 empty answer
        b'{"instruction": 3, "output": "y"}',  # 6 wrong type
        b'{"instruction": "caf\xe9", "output": "y"}',  # 7 not UTF-8
        b'{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}',  # 8 other format
        b'[1, 2]',  # 9 not an object
        b'{"instruction": "q", "output": "a", "history": [["only question"]]}',  # 10 bad history pair
        b'{"instruction": "q", "output": "a"}',  # 11 fine
    ]) + b"\n")
    report = validate_dataset([path], formatting=None, purpose="sft")
    assert where(report) == [
        (2, "", "invalid_json"), (4, "output", "missing_field"), (5, "output", "empty_response"),
        (6, "instruction", "wrong_type"), (7, "", "not_utf8"), (8, "", "mixed_formats"), (9, "", "not_object"),
        (10, "history[0]", "wrong_type"),
    ]
    assert str(report.problems[0]).startswith("train.jsonl:2: invalid JSON at column 21")
    assert (report.rows_ok, report.rows_bad, report.valid) == (2, 8, False)
    assert report.files[0].model_dump() == {"file": "train.jsonl", "size_bytes": path.stat().st_size,
                                            "rows_ok": 2, "rows_bad": 8, "problem_count": 8}
    assert report.formatting == "alpaca" and report.mapping_detected


def test_conversation_role_order_and_roles(tmp_path):
    path = write_lines(tmp_path / "chat.jsonl", [
        sharegpt(("human", "q"), ("gpt", "a")),
        sharegpt(("human", "q"), ("human", "q2"), ("gpt", "a")),
        sharegpt(("human", "q"), ("gpt", "a"), ("human", "q2")),
        sharegpt(("system", "s"), ("robot", "q"), ("gpt", "a")),
        sharegpt(("human", "q"), ("gpt", "a"), ("system", "late")),
    ])
    report = validate_dataset([path], formatting="sharegpt", purpose="sft")
    assert where(report) == [(2, "conversations[1]", "role_order"), (3, "conversations", "role_order"),
                             (4, "conversations[1].from", "unknown_role"), (5, "conversations[2].from", "role_order")]
    assert "the conversation must end with an 'gpt' message" in report.problems[1].reason


def test_preference_records_need_chosen_and_rejected(tmp_path):
    alpaca = write_lines(tmp_path / "pref.jsonl", [
        {"instruction": "q", "chosen": "good", "rejected": "bad"},
        {"instruction": "q", "chosen": "good"},
        {"instruction": "q", "output": "only one answer"},
        {"instruction": "q", "chosen": "", "rejected": "bad"},
    ])
    report = validate_dataset([alpaca], formatting=None, purpose="preference")
    assert where(report) == [(2, "rejected", "missing_field"), (3, "chosen", "missing_field"),
                             (3, "rejected", "missing_field"), (4, "chosen", "empty_response")]
    chat = write_lines(tmp_path / "pref_chat.jsonl", [
        sharegpt(("human", "q"), chosen={"from": "gpt", "value": "good"}, rejected={"from": "gpt", "value": "bad"}),
        sharegpt(("human", "q"), ("gpt", "a"), chosen={"from": "gpt", "value": "x"},
                 rejected={"from": "gpt", "value": "y"}),
        sharegpt(("human", "q"), chosen="plain text", rejected={"from": "human", "value": "y"}),
    ])
    report = validate_dataset([chat], formatting=None, purpose="preference")
    assert where(report) == [(2, "conversations", "role_order"), (3, "chosen", "wrong_type"),
                             (3, "rejected.from", "role_order")]
    assert report.rows_ok == 1
    (record,) = read_records(chat, kind="preference", limit=1)
    assert record == PreferenceRecord([Message("user", "q")], Message("assistant", "good"),
                                      Message("assistant", "bad"), origin=f"{chat}:1")


def test_kto_records_need_a_boolean_label(tmp_path):
    path = write_lines(tmp_path / "kto.jsonl", [
        {"instruction": "q", "output": "a", "kto_tag": True},
        {"instruction": "q", "output": "a", "kto_tag": False},
        {"instruction": "q", "output": "a"},
        {"instruction": "q", "output": "a", "kto_tag": "true"},
    ])
    report = validate_dataset([path], formatting=None, purpose="kto")
    assert where(report) == [(3, "kto_tag", "missing_label"), (4, "kto_tag", "missing_label")]
    assert "got 'true'" in report.problems[1].reason
    first, second = read_records(path, kind="kto", limit=2)
    assert isinstance(first, KTORecord) and (first.label, second.label) == (True, False)


def test_pretty_printed_json_reports_where_each_object_starts(tmp_path):
    path = tmp_path / "data.json"
    rows = [{"instruction": "ok", "output": "fine"}, {"instruction": "bad", "output": ""},
            {"instruction": "ok", "output": "fine"}, {"instruction": "missing"}]
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    report = validate_dataset([path], formatting="alpaca", purpose="sft")
    assert [(p.line, p.field) for p in report.problems] == [(6, "output"), (14, "output")]  # objects at 2, 6, 10, 14


def test_at_most_max_listed_but_all_counted_per_file(tmp_path):
    bad = write_lines(tmp_path / "bad.jsonl", [{"instruction": "q"}] * 30)
    good = write_lines(tmp_path / "good.jsonl", [{"instruction": "q", "output": "a"}] * 5)
    report = validate_dataset([good, bad], formatting=None, purpose="sft", max_listed=10)
    assert len(report.problems) == 10 and report.problem_count == 30
    assert report.problems_by_code == {"missing_field": 30}
    assert [(f.file, f.rows_ok, f.rows_bad) for f in report.files] == [("good.jsonl", 5, 0), ("bad.jsonl", 0, 30)]


def test_empty_and_utf16_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_bytes(json.dumps({"instruction": "q", "output": "a"}).encode("utf-16"))
    good = write_lines(tmp_path / "good.jsonl", [{"instruction": "q", "output": "a"}])
    report = validate_dataset([good, empty, utf16], formatting=None, purpose="sft")
    assert [str(problem) for problem in report.problems] == [
        "empty.jsonl: no records in the file", "utf16.jsonl:1: the file is UTF-16 text; save it as UTF-8"]


def test_progress_reports_bytes_about_every_megabyte(tmp_path):
    row = {"instruction": "q", "output": "x" * 1000}
    path = write_lines(tmp_path / "big.jsonl", [row] * 3000)  # ~3 MB
    calls: list[tuple[int, int]] = []
    validate_dataset([path], formatting=None, purpose="sft", progress=lambda done, total: calls.append((done, total)))
    size = path.stat().st_size
    assert 3 <= len(calls) <= 5 and calls[-1] == (size, size)
    assert all(total == size for _, total in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_detect_mapping_gives_dataset_info_names():
    assert detect_mapping([{"instruction": "q", "input": "i", "output": "a", "system": "s"}]) == (
        "alpaca", {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}, {})
    assert detect_mapping([{"instruction": "q", "chosen": "a", "rejected": "b"}])[1] == {
        "prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}
    assert detect_mapping([{"prompt": "q", "completion": "a", "label": False}])[1] == {
        "prompt": "prompt", "response": "completion", "kto_tag": "label"}
    assert detect_mapping([{"text": "a document"}]) == ("alpaca", {"prompt": "text"}, {})
    formatting, columns, tags = detect_mapping([sharegpt(("human", "q"), ("gpt", "a"), system="s")])
    assert (formatting, columns) == ("sharegpt", {"messages": "conversations", "system": "system"})
    assert (tags["role_tag"], tags["content_tag"], tags["user_tag"], tags["assistant_tag"]) == (
        "from", "value", "human", "gpt")
    openai = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                           {"role": "assistant", "content": "a"}]}
    formatting, columns, tags = detect_mapping([openai])
    assert (formatting, columns) == ("sharegpt", {"messages": "messages"})
    assert (tags["role_tag"], tags["content_tag"], tags["user_tag"], tags["assistant_tag"]) == (
        "role", "content", "user", "assistant")
    with pytest.raises(MappingNotDetected, match="cannot tell the dataset format from the fields 'question'"):
        detect_mapping([{"question": "q", "answer": "a"}])


def test_undetectable_or_unsupported_format_is_one_clear_problem(tmp_path):
    odd = write_lines(tmp_path / "odd.jsonl", ["", {"question": "q", "answer": "a"}, {"question": "q"}])
    report = validate_dataset([odd], formatting=None, purpose="sft")
    assert where(report) == [(2, "", "unknown_format")] and report.rows_ok == 0 and report.formatting is None
    chat = write_lines(tmp_path / "chat.jsonl", [sharegpt(("human", "q"), ("gpt", "a"))])
    report = validate_dataset([chat], formatting=None, purpose="pt")
    assert where(report) == [(1, "", "unsupported_purpose")]
    assert "sharegpt datasets cannot be used for 'pt'" in report.problems[0].reason
    text = write_lines(tmp_path / "text.jsonl", [{"text": "a document"}])
    assert where(validate_dataset([text], formatting=None, purpose="sft")) == [(1, "", "unsupported_purpose")]
    assert validate_dataset([text], formatting=None, purpose="pt").valid


def test_a_given_formatting_without_columns_still_gets_the_standard_fields(tmp_path):
    text = write_lines(tmp_path / "docs.jsonl", [{"text": "a document"}, {"text": "another"}])
    report = validate_dataset([text], formatting="alpaca", purpose="pt")
    assert report.valid and report.columns == {"prompt": "text"} and report.mapping_detected
    trl = write_lines(tmp_path / "kto.jsonl", [{"prompt": "q", "completion": "a", "label": False}])
    assert validate_dataset([trl], formatting="alpaca", purpose="kto").valid
    chat = write_lines(tmp_path / "chat.jsonl", [sharegpt(("human", "q"), ("gpt", "a"))])
    report = validate_dataset([chat], formatting="alpaca", purpose="sft")  # the user's word wins
    assert where(report) == [(1, "", "mixed_formats")] and not report.mapping_detected


def test_impossible_arguments_are_refused_with_the_field_name(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [{"instruction": "q", "output": "a"}])
    with pytest.raises(ValueError, match="purpose: unknown value 'dpo'"):
        validate_dataset([path], formatting=None, purpose="dpo")
    with pytest.raises(ValueError, match="purpose: sharegpt datasets cannot be used for 'pt'"):
        validate_dataset([path], formatting="sharegpt", purpose="pt")
    with pytest.raises(ValueError, match="formatting: unknown value 'csv'"):
        validate_dataset([path], formatting="csv", purpose="sft")


def test_custom_columns_and_same_file_names_in_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_lines(tmp_path / "a" / "data.jsonl", [{"question": "q", "answer": "a"}])
    second = write_lines(tmp_path / "b" / "data.jsonl", [{"question": "q"}])
    report = validate_dataset([first, second], formatting="alpaca", purpose="sft",
                              columns={"prompt": "question", "response": "answer"})
    assert [str(problem).split(": ")[0] for problem in report.problems] == [f"{second}:1"]
    assert report.columns == {"prompt": "question", "response": "answer"} and not report.mapping_detected


def test_report_is_json_ready(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [{"instruction": "q"}])
    data = json.loads(validate_dataset([path], formatting=None, purpose="sft").model_dump_json())
    assert data["problems"][0] == {"file": "a.jsonl", "line": 1, "field": "output", "code": "missing_field",
                                   "reason": data["problems"][0]["reason"]}


def test_validation_and_statistics_do_not_import_torch_or_transformers():
    code = ("import sys, tuneforge.data.validation, tuneforge.data.statistics, tuneforge.data.token_counting;"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_many_broken_lines_before_the_first_record(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", ["{broken"] * 2500 + [{"instruction": "q", "output": "a"}, {"x": 1}])
    report = validate_dataset([path], formatting=None, purpose="sft", max_listed=5000)
    assert (report.rows_bad, report.rows_ok) == (2501, 1)
    assert [p.line for p in report.problems] == [*range(1, 2501), 2502, 2502]  # instruction and output missing
