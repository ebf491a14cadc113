"""The checks a file uploaded through OpenAI's Files API gets: its format is told from the first example, and every
bad line is named with its line number and field, as OpenAI's own data checks report them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data.openai_files import MAX_ERRORS, MAX_LINE_BYTES, FileCheck, check_openai_file


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str, **extra: object) -> dict:
    return {"role": "assistant", "content": text, **extra}


CHAT = {"messages": [{"role": "system", "content": "Be brief."}, user("Capital of France?"), assistant("Paris.")]}
PREFERENCE = {"input": {"messages": [user("Capital of France?")]}, "preferred_output": [assistant("Paris.")],
              "non_preferred_output": [assistant("Lyon.")]}
REINFORCEMENT = {"messages": [{"role": "developer", "content": "Answer with a number."}, user("2 + 2?")],
                 "reference_answer": "4"}


def write(tmp_path: Path, *lines: object, name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                    encoding="utf-8")
    return path


def problems(verdict: FileCheck) -> list[tuple[int, str]]:
    return [(problem.line, problem.field) for problem in verdict.problems]


def only_problem(verdict: FileCheck) -> tuple[int, str, str]:
    assert verdict.problem_count == 1, verdict.summary()
    [problem] = verdict.problems
    return problem.line, problem.field, problem.reason


# -- good files ---------------------------------------------------------------------------------------------------


def test_a_chat_file_passes_and_counts_its_examples(tmp_path):
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    with_tools = {"tools": tools, "parallel_tool_calls": False, "messages": [
        user("Weather in Paris?"),
        assistant(None, tool_calls=[{"id": "c1", "type": "function",
                                     "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]),
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        assistant("Sunny.", weight=0), user("Thanks"), assistant("You are welcome.", weight=1)]}
    parts = {"messages": [user([{"type": "text", "text": "Hi"}]), assistant([{"type": "text", "text": "Hello"}])]}
    verdict = check_openai_file(write(tmp_path, CHAT, "", with_tools, parts))  # a blank line is no example
    assert verdict.ok, verdict.summary()
    assert (verdict.format, verdict.valid_examples) == ("chat", 3)


def test_a_preference_file_passes_in_either_generation_of_names(tmp_path):
    older = {"input": PREFERENCE["input"], "preferred_completion": [assistant("Paris.")],
             "non_preferred_completion": [assistant("Nice.")]}
    verdict = check_openai_file(write(tmp_path, PREFERENCE, older))
    assert verdict.ok, verdict.summary()
    assert (verdict.format, verdict.valid_examples) == ("preference", 2)


def test_a_reinforcement_file_passes_with_its_reference_fields(tmp_path):
    multi_turn = {"messages": [user("Hi"), assistant("Hello"), user("3 * 3?")], "reference_answer": "9",
                  "difficulty": 1}
    verdict = check_openai_file(write(tmp_path, REINFORCEMENT, multi_turn))
    assert verdict.ok, verdict.summary()
    assert (verdict.format, verdict.valid_examples) == ("reinforcement", 2)


# -- each kind of bad line names its line and field --------------------------------------------------------------


def test_weight_2_names_the_message(tmp_path):
    bad = {"messages": [user("q"), assistant("a", weight=2)]}
    line, field, reason = only_problem(check_openai_file(write(tmp_path, CHAT, bad)))
    assert (line, field) == (2, "messages[1].weight")
    assert "0" in reason and "1" in reason and "2" in reason


def test_an_unknown_role_names_the_message(tmp_path):
    bad = {"messages": [user("q"), {"role": "robot", "content": "beep"}, assistant("a")]}
    line, field, reason = only_problem(check_openai_file(write(tmp_path, CHAT, CHAT, bad)))
    assert (line, field) == (3, "messages[1].role")
    assert "robot" in reason and "assistant" in reason


def test_a_chat_example_without_an_assistant_answer_is_named(tmp_path):
    bad = {"messages": [{"role": "system", "content": "s"}, user("q")]}
    line, field, reason = only_problem(check_openai_file(write(tmp_path, CHAT, bad)))
    assert (line, field) == (2, "messages")
    assert "assistant" in reason and "line 1" in reason


def test_a_chat_example_whose_answers_all_weigh_0_teaches_nothing(tmp_path):
    bad = {"messages": [user("q"), assistant("a", weight=0)]}
    line, field, reason = only_problem(check_openai_file(write(tmp_path, CHAT, bad)))
    assert (line, field) == (2, "messages")
    assert "weight 0" in reason


def test_a_preference_side_with_two_messages_is_named(tmp_path):
    bad = {**PREFERENCE, "preferred_output": [assistant("Paris."), assistant("Really, Paris.")]}
    line, field, reason = only_problem(check_openai_file(write(tmp_path, PREFERENCE, bad)))
    assert (line, field) == (2, "preferred_output")
    assert "one assistant message" in reason and "2" in reason


def test_a_reinforcement_example_ending_with_an_assistant_message_is_named(tmp_path):
    bad = {"messages": [user("2 + 2?"), assistant("4")], "reference_answer": "4"}
    line, field, reason = only_problem(check_openai_file(write(tmp_path, REINFORCEMENT, bad)))
    assert (line, field) == (2, "messages[1]")
    assert "reinforcement" in reason and "user" in reason


def test_mixed_formats_name_the_first_line_that_differs(tmp_path):
    verdict = check_openai_file(write(tmp_path, CHAT, CHAT, PREFERENCE, CHAT, PREFERENCE))
    assert problems(verdict) == [(3, ""), (5, "")]
    assert "line 1" in verdict.problems[0].reason and "preference" in verdict.problems[0].reason
    assert verdict.problems[0].code == "mixed_formats"


def test_invalid_json_names_the_line(tmp_path):
    line, field, reason = only_problem(check_openai_file(write(tmp_path, CHAT, '{"messages": [', CHAT)))
    assert (line, field) == (2, "")
    assert "invalid JSON" in reason


def test_a_line_that_is_no_object_is_named(tmp_path):
    line, _, reason = only_problem(check_openai_file(write(tmp_path, CHAT, "[1, 2]")))
    assert line == 2 and "object" in reason


def test_an_over_long_line_is_named_without_being_read_whole(tmp_path):
    huge = {"messages": [user("x" * (MAX_LINE_BYTES + 10)), assistant("a")]}
    line, _, reason = only_problem(check_openai_file(write(tmp_path, CHAT, huge, CHAT)))
    assert line == 2
    assert "limit" in reason


def test_an_empty_file_is_an_error(tmp_path):
    for content in ("", "\n\n  \n"):
        path = tmp_path / "empty.jsonl"
        path.write_text(content, encoding="utf-8")
        line, _, reason = only_problem(check_openai_file(path))
        assert line == 0 and "no examples" in reason


def test_a_thousand_errors_are_counted_but_only_the_first_kept(tmp_path):
    path = write(tmp_path, *(["not json"] * 1000))
    verdict = check_openai_file(path)
    assert verdict.problem_count == 1000
    assert len(verdict.problems) == MAX_ERRORS
    assert verdict.unreported == 1000 - MAX_ERRORS
    summary = verdict.summary(listed=20)
    assert summary.startswith("1000 problem(s)")
    assert "line 20:" in summary and "line 21:" not in summary
    assert "980 more not listed" in summary


@pytest.mark.parametrize("bad, field", [
    ({"messages": [user([{"type": "image_url", "image_url": {"url": "x"}}]), assistant("a")]},
     "messages[0].content[0]"),
    ({"messages": [user("q"), assistant("a", name="bot")]}, "messages[1].name"),
    ({"messages": [user("q"), assistant(None, tool_calls=[{"type": "function", "function": {
        "name": "f", "arguments": "{not json"}}])]}, "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [user("q"), user("again"), assistant("a")]}, "messages[1].role"),
    ({"messages": [user("q"), {"role": "system", "content": "late"}, assistant("a")]}, "messages[1].role"),
    ({"messages": [user("q"), assistant("a")], "tools": [{"type": "function"}]}, "tools[0]"),
    ({"messages": [user("q"), assistant("")]}, "messages[1].content"),
])
def test_other_bad_fields_are_named(tmp_path, bad, field):
    line, named, _ = only_problem(check_openai_file(write(tmp_path, CHAT, bad)))
    assert (line, named) == (2, field)


def test_parallel_tool_calls_false_refuses_two_calls_at_once(tmp_path):
    call = {"type": "function", "function": {"name": "f", "arguments": "{}"}}
    bad = {"parallel_tool_calls": False, "messages": [
        user("q"), assistant(None, tool_calls=[call, call]), {"role": "tool", "content": "1"},
        {"role": "tool", "content": "2"}, assistant("done")]}
    line, field, reason = only_problem(check_openai_file(write(tmp_path, CHAT, bad)))
    assert (line, field) == (2, "messages[1].tool_calls")
    assert "parallel_tool_calls" in reason
