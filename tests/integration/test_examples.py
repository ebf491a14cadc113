"""Every shipped example config is a test: each parses and finds its datasets; the smallest train for 2 steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tiny import build_tiny_llama
from tuneforge.rundir import EventWriter, RunDir, read_events
from tuneforge.schemas import load_config_file, parse_overrides, parse_training_config
from tuneforge.schemas.run_spec import RunSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))


def test_the_expected_examples_ship_and_the_readme_names_each():
    names = {path.name for path in CONFIGS}
    assert {"sft_lora.yaml", "sft_freeze.yaml", "sft_full.yaml", "pt_lora.yaml", "sft_lora_mix.yaml",
            "sft_lora_dir.yaml", "dpo_lora.yaml", "kto_lora.yaml", "reward_lora.yaml", "grpo_lora.yaml"} <= names
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert f"tuneforge train examples/{name}" in readme, name


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_parses_and_its_datasets_resolve(path):
    from tuneforge.cli.training import plan_from_file
    from tuneforge.data.sources import resolve_dataset_sources

    raw, resolved = load_config_file(path)
    config = parse_training_config(raw, source=str(resolved))
    assert config.model_name_or_path == "bundled"
    sources = resolve_dataset_sources(config.dataset, config.dataset_dir, resolved.parent)
    assert sources and all(f.is_file() for s in sources for f in s.files)
    # relative paths resolve against the config's folder, not the working directory
    assert all(EXAMPLES in f.resolve().parents or EXAMPLES.parent / "src" in f.resolve().parents
               for s in sources for f in s.files)
    if "reward_model" in raw and not (resolved.parent / raw["reward_model"]).exists():
        # ppo_lora.yaml scores with the model reward_lora.yaml trains: until that ran, the plan says so
        from tuneforge.planning import PlanRejected

        with pytest.raises(PlanRejected) as caught:
            plan_from_file(path, [])
        assert [problem.field for problem in caught.value.problems] == ["reward_model"]
        return
    plan, _ = plan_from_file(path, [])  # the planner's verdict: every record valid, every setting honoured here
    assert plan.dataset is not None and plan.dataset.num_train_samples > 0


@pytest.mark.parametrize(("name", "kind", "count"), [
    ("preference_demo", "preference", 80), ("preference_demo_sharegpt", "preference", 20), ("kto_demo", "kto", 80),
    ("arithmetic_prompts", "prompt", 200),
])
def test_the_example_datasets_read_as_their_stage_needs(name, kind, count):
    """Each shipped dataset through its dataset_info.json entry (LLaMA-Factory's form): every record valid, as the
    record kind its stage reads: preference pairs (chosen first), KTO samples both desirable and not, prompts with
    the reference answer the graders read as item.answer."""
    from tuneforge.data.prepare import load_source
    from tuneforge.data.records import KTORecord, PreferenceRecord, PromptRecord
    from tuneforge.data.sources import resolve_dataset_sources

    (source,) = resolve_dataset_sources(name, "data", EXAMPLES)
    records = load_source(source, kind, None, 0, lambda *_: None)
    assert len(records) == count
    if kind == "preference":
        assert all(isinstance(r, PreferenceRecord) and r.chosen.content != r.rejected.content for r in records)
        assert source.ranking
    elif kind == "kto":
        labels = [r.label for r in records if isinstance(r, KTORecord)]
        assert len(labels) == count and sum(labels) == count // 2
    else:
        assert all(isinstance(r, PromptRecord) and r.messages[-1].role == "user" and r.item["answer"]
                   for r in records)


def test_the_arithmetic_prompts_are_what_their_script_makes_and_their_answers_are_right(tmp_path):
    import json
    import runpy
    import subprocess
    import sys

    script = EXAMPLES / "data" / "make_arithmetic_prompts.py"
    check = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    made = runpy.run_path(str(script))["rows"]()
    for row in made:
        prompt, answer = row["messages"][0]["content"], row["answer"]
        if row["kind"] in ("addition", "subtraction"):
            left, operator, right = prompt.removeprefix("What is ").split("?")[0].split()
            assert str(int(left) + int(right) if operator == "+" else int(left) - int(right)) == answer
        elif row["kind"] == "word_count":
            assert str(len(prompt.split('"')[1].split())) == answer
        else:
            assert prompt.split('"')[1].upper() == answer
    shipped = [json.loads(line) for line in (EXAMPLES / "data" / "arithmetic_prompts.jsonl").read_text().splitlines()]
    assert shipped == made and {row["kind"] for row in made} == {"addition", "subtraction", "word_count", "uppercase"}


def test_the_grpo_example_rewards_are_runnable_graders_that_score_right_answers():
    from tuneforge.graders import grade_samples
    from tuneforge.graders.reward_specs import reward_graders

    raw, resolved = load_config_file(EXAMPLES / "grpo_lora.yaml")
    config = parse_training_config(raw, source=str(resolved))
    graders = reward_graders(config.rewards, resolved.parent)
    assert [g.name for g in graders] == ["exact_answer", "answer_in_text"]
    assert {g.grader.type for g in graders} == {"string_check", "python"}
    item = {"answer": "42"}
    for reward in graders:
        scores = [r.score for r in grade_samples(reward.grader, [{"output_text": text} for text in ("42", "7")],
                                                 [item, item])]
        assert scores == [1.0, 0.0], reward.name


def test_the_directory_example_uses_valid_jsonl_for_evaluation():
    from tuneforge.data.sources import resolve_dataset_sources

    raw, resolved = load_config_file(EXAMPLES / "sft_lora_dir.yaml")
    config = parse_training_config(raw)
    (source,) = resolve_dataset_sources(config.dataset, config.dataset_dir, resolved.parent)
    assert [f.name for f in source.files] == ["train.jsonl"] and [f.name for f in source.eval_files] == ["valid.jsonl"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("examples-tiny-llama")
    build_tiny_llama(path)
    return path


@pytest.mark.parametrize("name", ["sft_lora.yaml", "pt_lora.yaml", "sft_freeze.yaml", "dpo_lora.yaml",
                                  "kto_lora.yaml", "reward_lora.yaml", "grpo_lora.yaml"])
def test_small_example_trains_for_two_steps(tmp_path, tiny_model, name):
    from tuneforge.engine.callbacks import StopRequest
    from tuneforge.engine.run import run_worker

    raw, resolved = load_config_file(EXAMPLES / name)
    raw.update(parse_overrides([f"model_name_or_path={tiny_model}", "max_steps=2", "cutoff_len=64",
                                f"output_dir={tmp_path / 'out'}"]))
    if raw.get("stage") == "grpo":  # short answers: the tiny model writes noise until max_new_tokens
        raw.update(max_new_tokens=8)
    run_dir = RunDir(tmp_path / "run")
    run_dir.create(RunSpec(config=raw, config_dir=str(resolved.parent)))
    code = run_worker(run_dir, EventWriter(run_dir.events_file), StopRequest())
    events = read_events(run_dir.events_file)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    assert events[-1]["step"] == 2
    if "val_size" in raw and raw.get("eval_strategy") != "steps":  # evaluated once at the end, not twice
        assert [e["step"] for e in events if e["type"] == "eval"] == [2]
    weights = "adapter_model.safetensors" if "lora" in name else "model.safetensors"
    assert (tmp_path / "out" / weights).is_file()
