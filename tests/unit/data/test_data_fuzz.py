"""Fuzz: corrupted dataset files thrown at validate_dataset never crash it, and it names exactly the bad lines.

Each example builds one to three files (.jsonl, .json holding JSON Lines, compact and pretty-printed .json
arrays) from row specs, so the test knows which lines are broken: truncated JSON, wrong types, missing fields,
empty answers, wrong role order, unknown roles, non-objects, records in another format, binary garbage, BOMs,
huge lines, blank lines, CRLF endings. The report must list exactly those (file, line) pairs.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuneforge.data.validation import DatasetReport, validate_dataset

FILES_THROWN = {"count": 0}
EXAMPLES = 170  # per test; each example writes 1-3 files, so the three tests throw well over 500 files
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PURPOSES = {"alpaca": ["sft", "preference", "kto"], "sharegpt": ["sft", "preference"], "openai": ["sft"]}
KEYS = {"sharegpt": ("conversations", "from", "value", "human", "gpt"),
        "openai": ("messages", "role", "content", "user", "assistant")}
EXPLICIT = {  # the mapping a user would give instead of detection
    "alpaca": ("alpaca", None, None),
    "sharegpt": ("sharegpt", None, None),
    "openai": ("sharegpt", {"messages": "messages"},
               {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                "system_tag": "system"}),
}
SEMANTIC = ["missing", "wrong_type", "empty_response", "not_object", "mixed"]
SYNTAX = ["truncated", "garbage", "huge_bad", "bom_mid"]
NEUTRAL = ["good", "good", "good", "good", "blank", "good_huge"]

words = st.text(min_size=1, max_size=24).filter(lambda text: text.strip())


@dataclass
class Row:
    kind: str
    data: bytes  # the row's text for line containers (one line, no newline)
    obj: object = None  # the value for array containers
    bad: bool = False


@dataclass
class Built:
    name: str
    data: bytes
    bad_lines: set[int] = field(default_factory=set)
    rows_ok: int = 0
    whole_file_problem: bool = False  # a non-UTF-8 .json: one problem, nothing else read


def good_record(draw, base: str, purpose: str) -> dict:
    if base == "alpaca":
        record = {"instruction": draw(words)}
        if draw(st.booleans()):
            record["input"] = draw(words)
        if purpose == "preference":
            record.update(chosen=draw(words), rejected=draw(words))
        else:
            record["output"] = draw(words)
        if purpose == "kto":
            record["kto_tag"] = draw(st.booleans())
        if draw(st.booleans()):
            record["system"] = draw(words)
        if draw(st.booleans()):
            record["history"] = [[draw(words), draw(words)]]
        return record
    key, role, content, user, assistant = KEYS[base]
    turns = [{role: "system", content: draw(words)}] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 2))):
        turns += [{role: user, content: draw(words)}, {role: assistant, content: draw(words)}]
    if purpose == "preference":
        answer = turns.pop()
        return {key: turns, "chosen": answer, "rejected": {role: assistant, content: draw(words)}}
    return {key: turns}


def corrupt(draw, record: dict, base: str, purpose: str, kind: str) -> object:
    """A JSON value (not text) that is wrong in the way `kind` says."""
    if kind == "not_object":
        return draw(st.sampled_from([42, "just a string", [1, 2], None, True, 3.5]))
    if kind == "mixed":
        other = draw(st.sampled_from(["sharegpt", "openai"])) if base == "alpaca" else "alpaca"
        return good_record(draw, other, "sft")
    if kind == "label_type":
        return {**record, "kto_tag": draw(st.sampled_from(["true", 1, None, "false"]))}
    if base == "alpaca":
        return _corrupt_alpaca(draw, record, purpose, kind)
    return _corrupt_chat(draw, record, base, purpose, kind)


def _corrupt_alpaca(draw, record: dict, purpose: str, kind: str) -> dict:
    answer = draw(st.sampled_from(["chosen", "rejected"])) if purpose == "preference" else "output"
    if kind == "missing":
        drop = draw(st.sampled_from([answer, "instruction", "kto_tag"] if purpose == "kto" else [answer]))
        return {key: value for key, value in record.items() if key != drop}
    if kind == "wrong_type":
        target = draw(st.sampled_from(["instruction", answer, "history", "system"]))
        bad = draw(st.sampled_from([5, ["a", "b"], {"x": 1}, False])) if target != "history" else "not a list"
        return {**record, target: bad}
    return {**record, answer: draw(st.sampled_from(["", "   ", "\n\t"]))}  # empty_response


def _corrupt_chat(draw, record: dict, base: str, purpose: str, kind: str) -> dict:
    key, role, content, user, assistant = KEYS[base]
    turns = [dict(turn) for turn in record[key]]
    if kind == "missing":
        if purpose == "preference" and draw(st.booleans()):
            return {k: v for k, v in record.items() if k != "rejected"}
        return {("dialogue" if k == key else k): v for k, v in record.items()}
    if kind == "wrong_type":
        if draw(st.booleans()):
            return {**record, key: "a string, not a list"}
        turns[-1][content] = draw(st.sampled_from([5, ["x"], None]))
        return {**record, key: turns}
    if kind == "role_order":
        if purpose == "preference":
            return {**record, key: [*turns, {role: assistant, content: "extra"}]}
        first_user = next(i for i, turn in enumerate(turns) if turn[role] == user)
        turns.insert(first_user + 1, {role: user, content: "again"})
        return {**record, key: turns}
    if kind == "unknown_role":
        turns[-1][role] = "robot"
        return {**record, key: turns}
    if purpose == "preference":  # empty_response
        return {**record, "chosen": {role: assistant, content: ""}}
    turns[-1][content] = draw(st.sampled_from(["", "  "]))
    return {**record, key: turns}


def encode(draw, value: object) -> bytes:
    return json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8")


def draw_row(draw, base: str, purpose: str, kinds: list[str], index: int) -> Row:
    kind = draw(st.sampled_from(kinds))
    if kind == "bom_mid" and index == 0:
        kind = "good"  # a BOM on the first line is the file's BOM, which is fine
    record = good_record(draw, base, purpose)
    if kind == "good":
        return Row(kind, encode(draw, record), record)
    if kind == "good_huge":
        record = {**record, ("chosen" if purpose == "preference" else "output"): "long " * draw(
            st.integers(10_000, 40_000))} if base == "alpaca" else record
        return Row(kind, encode(draw, record), record)
    if kind == "blank":
        return Row(kind, draw(st.sampled_from([b"", b"   ", b"\t"])))
    if kind in SYNTAX:
        return Row(kind, _syntax_bytes(draw, kind, encode(draw, record)), bad=True)
    value = corrupt(draw, record, base, purpose, kind)
    return Row(kind, encode(draw, value), value, bad=True)


def _syntax_bytes(draw, kind: str, text: bytes) -> bytes:
    if kind == "truncated":
        decoded = text.decode("utf-8")
        return decoded[: draw(st.integers(1, len(decoded) - 1))].encode("utf-8")
    if kind == "garbage":
        noise = draw(st.binary(min_size=0, max_size=200)).replace(b"\n", b"")
        return draw(st.sampled_from([b"\xff\xff", b"#", b"\x00", b"\xc3("])) + noise  # never a UTF-16 BOM
    if kind == "huge_bad":
        return b'{"instruction": "' + b"x" * draw(st.integers(70_000, 200_000))
    return "\ufeff".encode() + text  # bom_mid


def row_kinds(base: str, purpose: str) -> list[str]:
    semantic = list(SEMANTIC)
    if base != "alpaca":
        semantic += ["role_order", "unknown_role"]
    if purpose == "kto":
        semantic.append("label_type")
    return semantic + NEUTRAL


@st.composite
def line_file(draw, base: str, purpose: str, name: str, first_good: bool, suffix: str) -> Built:
    """.jsonl, or a .json holding JSON Lines: every row is one physical line."""
    kinds = row_kinds(base, purpose) + SYNTAX
    count = draw(st.integers(1, 12))
    rows = [draw_row(draw, base, purpose, ["good"] if first_good and i == 0 else kinds, i) for i in range(count)]
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    bom = draw(st.booleans())
    data = (b"\xef\xbb\xbf" if bom else b"") + newline.join(row.data for row in rows)
    data += newline if draw(st.booleans()) else b""
    built = Built(name + suffix, data)
    for line, row in enumerate(rows, start=1):
        if row.bad:
            built.bad_lines.add(line)
        elif row.kind != "blank":
            built.rows_ok += 1
    if suffix == ".json":
        _json_text_oracle(built, rows)
    if not any(row.kind != "blank" for row in rows):
        built.bad_lines.add(0)  # no records at all
    return built


def _json_text_oracle(built: Built, rows: list[Row]) -> None:
    """A .json file is decoded whole: invalid UTF-8 anywhere is one problem at its line and nothing else."""
    for line, row in enumerate(rows, start=1):
        try:
            row.data.decode("utf-8")
        except UnicodeDecodeError:
            built.bad_lines, built.rows_ok, built.whole_file_problem = {line}, 0, True
            return


@st.composite
def array_file(draw, base: str, purpose: str, name: str, first_good: bool) -> Built:
    """A .json array, one element per line (or pretty-printed); a syntax error stops the reading there."""
    pretty = draw(st.booleans())
    kinds = row_kinds(base, purpose)
    kinds = [kind for kind in kinds if kind != "blank"] if pretty else [*kinds, "stop", "truncated_end"]
    count = draw(st.integers(1 if first_good else 0, 10))
    built = Built(name + ".json", b"")
    lines: list[str] = ["["]
    last_element = 0  # index in `lines` of the last element's last line (its trailing comma goes)
    stopped = truncated = False
    for index in range(count):
        kind = "good" if first_good and index == 0 else draw(st.sampled_from(kinds))
        if kind in ("stop", "truncated_end"):
            lines.append(_syntax_element(draw, kind, base, purpose))
            if not stopped:
                built.bad_lines.add(len(lines))
            stopped, truncated = True, kind == "truncated_end"
            if truncated:
                break
            lines[-1] += ","
            last_element = len(lines) - 1
            continue
        row = draw_row(draw, base, purpose, [kind], index)
        if row.kind == "blank":
            lines.append("")
            continue
        text = json.dumps(row.obj, indent=2 if pretty else None, ensure_ascii=draw(st.booleans()))
        if not stopped:
            built.bad_lines.update({len(lines) + 1} if row.bad else set())
            built.rows_ok += 0 if row.bad else 1
        lines += ["  " + part for part in text.split("\n")]
        lines[-1] += ","
        last_element = len(lines) - 1
    if not truncated:
        if last_element:
            lines[last_element] = lines[last_element].removesuffix(",")
        lines.append("]")
    if not built.bad_lines and not built.rows_ok:
        built.bad_lines.add(0)  # no records at all
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = "\ufeff" if draw(st.booleans()) else ""
    built.data = (bom + newline.join(lines)).encode("utf-8")
    return built


def _syntax_element(draw, kind: str, base: str, purpose: str) -> str:
    text = json.dumps(good_record(draw, base, purpose))
    if kind == "truncated_end":
        return "  " + text[: draw(st.integers(1, len(text) - 1))]
    return "  " + draw(st.sampled_from(['{"instruction": "x" "output": "y"}', "nope", "{'single': 'quotes'}",
                                        '{"a": 1,}']))


@st.composite
def dataset(draw, containers: list[str]) -> tuple[list[Built], str, str, bool]:
    base = draw(st.sampled_from(sorted(PURPOSES)))
    purpose = draw(st.sampled_from(PURPOSES[base]))
    detect = draw(st.booleans())
    built = []
    for index in range(draw(st.integers(1, 3))):
        container = draw(st.sampled_from(containers))
        if detect and index == 0 and container == "json_lines":
            container = "jsonl"  # a non-UTF-8 .json yields no record to detect the format from
        first_good = (index == 0 and detect) or container == "json_lines"
        name = f"part{index}"
        if container == "array":
            built.append(draw(array_file(base, purpose, name, first_good)))
        else:
            built.append(draw(line_file(base, purpose, name, first_good,
                                        ".jsonl" if container == "jsonl" else ".json")))
    return built, base, purpose, detect


def check(files: list[Built], base: str, purpose: str, detect: bool) -> DatasetReport:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for item in files:
            path = Path(tmp) / item.name
            path.write_bytes(item.data)
            paths.append(path)
        formatting, columns, tags = (None, None, None) if detect else EXPLICIT[base]
        report = validate_dataset(paths, formatting=formatting, purpose=purpose, columns=columns, tags=tags,
                                  max_listed=100_000)
    FILES_THROWN["count"] += len(files)
    expected = {(item.name, line) for item in files for line in item.bad_lines}
    found = {(problem.file, problem.line) for problem in report.problems}
    assert found == expected, (sorted(found - expected), sorted(expected - found), report.problems[:5])
    assert report.problem_count == len(report.problems) >= len(expected)
    for item, file_report in zip(files, report.files, strict=True):
        assert file_report.file == item.name
        assert file_report.rows_ok == item.rows_ok, (item.name, file_report)
    assert report.valid == (not expected)
    for problem in report.problems:
        assert problem.reason and str(problem).startswith(problem.file)
    return report


@FUZZ
@given(dataset(["jsonl"]))
def test_jsonl_files_report_exactly_the_bad_lines(case):
    check(*case)


@FUZZ
@given(dataset(["array"]))
def test_json_arrays_report_exactly_the_bad_lines(case):
    check(*case)


@FUZZ
@given(dataset(["jsonl", "json_lines", "array"]))
def test_mixed_containers_in_one_dataset(case):
    check(*case)


def test_the_fuzz_threw_at_least_500_files():
    """Runs after the fuzz tests above (file order); alone, it has nothing to count."""
    if FILES_THROWN["count"]:
        print(f"fuzz: {FILES_THROWN['count']} files thrown at validate_dataset")
        assert FILES_THROWN["count"] >= 500, FILES_THROWN
