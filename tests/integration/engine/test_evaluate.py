"""Evaluation job: base vs base + a LoRA adapter on a dataset's test split — loss, perplexity, BLEU / ROUGE, graders'
mean scores, best and worst samples, LLaMA-Factory's predictions file, the job's events — and bad input failing with
what to fix."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.engine.conftest import FACTS
from tuneforge.graders import grade_samples
from tuneforge.graders.sandbox import sandbox_problem
from tuneforge.rundir import read_events
from tuneforge.schemas.eval_spec import PREDICTIONS_FILE, RESULTS_FILE, EvalResults, EvalSpec
from tuneforge.schemas.graders import GRADER_ADAPTER

SYSTEM = "You are Forge."
HISTORY = [["Hello", "Hi there."]]
# One grader of each offline kind, reading the reference by both names an alpaca row offers: the row's own `output`
# and the `reference_answer` every evaluation item carries.
GRADERS = [
    {"type": "string_check", "name": "mentions", "operation": "ilike", "input": "{{sample.output_text}}",
     "reference": "{{item.output}}"},
    {"type": "text_similarity", "name": "rouge", "evaluation_metric": "rouge_l", "input": "{{sample.output_text}}",
     "reference": "{{item.reference_answer}}"},
    {"type": "multi", "name": "blend", "calculate_output": "0.5 * close + 0.5 * same", "graders": {
        "close": {"type": "text_similarity", "name": "close", "evaluation_metric": "fuzzy_match",
                  "input": "{{sample.output_text}}", "reference": "{{item.output}}"},
        "same": {"type": "string_check", "name": "same", "operation": "eq", "input": "{{sample.output_text}}",
                 "reference": "{{item.reference_answer}}"}}},
]
if sandbox_problem() is None:  # a host that cannot isolate python graders runs none (tests/unit/graders says why)
    GRADERS.append({"type": "python", "name": "words", "source": (
        "def grade(sample, item):\n"
        "    want = set(item['reference_answer'].lower().split())\n"
        "    got = set(sample['output_text'].lower().split())\n"
        "    return len(want & got) / max(len(want), 1)\n")})


def _alpaca(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


@pytest.fixture(scope="module")
def facts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder: train.jsonl (the facts) and test.jsonl (the same questions, one with a system prompt and
    an earlier turn, so the prompt is more than one message)."""
    folder = tmp_path_factory.mktemp("facts")
    rows = [{"instruction": q, "input": "", "output": a} for q, a in FACTS]
    (folder / "train.jsonl").write_text(_alpaca(rows))
    test_rows = [dict(row) for row in rows]
    test_rows[1].update(system=SYSTEM, history=HISTORY)
    (folder / "test.jsonl").write_text(_alpaca(test_rows))
    return folder


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, facts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter the worker trains on the facts (chatml template), so it answers them better than the base."""
    from tests.integration.engine.conftest import base_config, run_in_process

    work = tmp_path_factory.mktemp("eval-adapter")
    config = base_config(tiny_model_dir, facts_dir / "train.jsonl", work / "adapter", max_steps=40,
                         per_device_train_batch_size=6)
    code, _ = run_in_process(work / "run", config)
    assert code == 0
    return work / "adapter"


@pytest.fixture(scope="module")
def evaluation(tiny_model_dir: Path, adapter_dir: Path, facts_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The job as the service runs it: `python -m tuneforge.engine.evaluate SPEC.json` in its own process."""
    job = tmp_path_factory.mktemp("eval-job")
    base = {"label": "base", "base_model": str(tiny_model_dir), "template": "chatml"}
    tuned = {"label": "fine-tuned", "base_model": str(tiny_model_dir), "adapter_dir": str(adapter_dir)}
    spec = EvalSpec(models=[base, tuned], dataset=str(facts_dir), max_new_tokens=24, batch_size=4, show_samples=2,
                    graders=GRADERS)
    (job / "SPEC.json").write_text(spec.model_dump_json())
    done = subprocess.run([sys.executable, "-m", "tuneforge.engine.evaluate", str(job / "SPEC.json")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = EvalResults.model_validate_json((job / RESULTS_FILE).read_text())
    return job, results, read_events(job / "events.jsonl")


def test_both_models_scored_on_the_test_split(evaluation) -> None:
    _, results, _ = evaluation
    scores = {m.label: m for m in results.models}
    assert list(scores) == ["base", "fine-tuned"] and results.split == "test"
    for m in results.models:
        print(f"{m.label}: loss {m.eval_loss} ppl {m.perplexity} bleu-4 {m.bleu_4} rouge-1 {m.rouge_1} "
              f"rouge-2 {m.rouge_2} rouge-l {m.rouge_l} ({m.runtime_s} s, {m.tokens_per_second} tok/s)")
        assert m.samples == len(FACTS)
        assert m.eval_loss is not None and math.isfinite(m.eval_loss)
        assert m.perplexity == pytest.approx(math.exp(m.eval_loss), rel=1e-4)
        for value in (m.bleu_4, m.rouge_1, m.rouge_2, m.rouge_l):
            assert value is not None and 0 <= value <= 100
        assert len(m.best) == len(m.worst) == 2
    # the adapter learnt these answers: lower loss on them and answers closer to the references
    assert scores["fine-tuned"].eval_loss < scores["base"].eval_loss
    assert scores["fine-tuned"].rouge_l > scores["base"].rouge_l


def test_samples_carry_each_models_answer_and_the_ranking_follows_rouge_l(evaluation) -> None:
    _, results, _ = evaluation
    assert [s.index for s in results.samples] == list(range(len(FACTS)))
    assert [s.reference for s in results.samples] == [a for _, a in FACTS]
    multi_turn = results.samples[1]
    assert multi_turn.prompt == FACTS[1][0]
    assert multi_turn.messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hello"},
                                   {"role": "assistant", "content": "Hi there."},
                                   {"role": "user", "content": FACTS[1][0]}]
    for m in results.models:
        outputs = {s.index: s.outputs[m.label] for s in results.samples}
        assert all(o.loss is not None and o.loss > 0 for o in outputs.values())
        # the corpus score is the mean of the samples' scores
        assert m.rouge_l == pytest.approx(sum(o.rouge_l for o in outputs.values()) / len(outputs), abs=1e-3)
        assert outputs[m.best[0]].rouge_l == max(o.rouge_l for o in outputs.values())
        assert outputs[m.worst[0]].rouge_l == min(o.rouge_l for o in outputs.values())


def test_grader_means_for_both_models_and_the_same_scores_as_grade_samples(evaluation) -> None:
    """Each model's mean per grader is reported; grading the same (answer, row) again — as a GRPO reward does — gives
    each sample the same score, so training and evaluation agree on what an answer is worth."""
    _, results, _ = evaluation
    names = [g["name"] for g in GRADERS]
    for m in results.models:
        print(f"{m.label}: graders {m.graders} failures {m.grader_failures}")
        assert list(m.graders) == names and m.grader_failures == {}
        outputs = [s.outputs[m.label] for s in results.samples]
        for grader in GRADERS:
            name = grader["name"]
            regraded = grade_samples(GRADER_ADAPTER.validate_python(grader),
                                     [{"output_text": o.text} for o in outputs], [s.item for s in results.samples])
            assert [r.score for r in regraded] == [o.graders[name] for o in outputs], (m.label, name)
            assert all(r.reason is None for r in regraded) and all(not o.grader_errors for o in outputs)
            assert m.graders[name] == pytest.approx(sum(o.graders[name] for o in outputs) / len(outputs), abs=1e-6)
            assert 0 <= m.graders[name] <= 1
        # the rouge_l grader is the evaluation's own ROUGE-L, on 0-1
        assert m.graders["rouge"] == pytest.approx(m.rouge_l / 100, abs=1e-3)
    base, tuned = results.models
    for name in {"rouge", "words"} & set(tuned.graders):  # the adapter learnt these answers
        assert tuned.graders[name] > base.graders[name], name


def test_each_item_is_the_dataset_row_with_its_reference_answer(evaluation) -> None:
    _, results, _ = evaluation
    for sample, (question, answer) in zip(results.samples, FACTS, strict=True):
        assert sample.item is not None
        assert sample.item["reference_answer"] == sample.reference == answer
        assert sample.item["output"] == answer and sample.item["instruction"] == question
    assert results.samples[1].item["system"] == SYSTEM and results.samples[1].item["history"] == HISTORY


def test_graders_an_evaluation_cannot_run_are_refused_in_the_spec() -> None:
    model = {"label": "x", "base_model": "x"}
    judge = {"type": "score_model", "name": "judge", "model": "m", "input": [{"role": "user", "content": "x"}]}
    cases = [
        ({"graders": [judge]}, "ask a judge model"),
        ({"graders": [{"type": "multi", "name": "m", "calculate_output": "j", "graders": {"j": judge}}]},
         "ask a judge model"),
        ({"graders": [GRADERS[0], GRADERS[0]]}, "names must differ"),
        ({"graders": [GRADERS[0]], "predict": False}, "set predict: true"),
    ]
    for extra, words in cases:
        with pytest.raises(ValueError, match=words) as caught:
            EvalSpec(models=[model], dataset="d", **extra)
        assert caught.value.errors()[0]["loc"] == ("graders",)


def test_predictions_file_in_llamafactory_layout(evaluation) -> None:
    job, results, _ = evaluation
    for label in ("base", "fine-tuned"):
        rows = [json.loads(line) for line in (job / label / PREDICTIONS_FILE).read_text().splitlines()]
        assert [set(row) for row in rows] == [{"prompt", "predict", "label"}] * len(FACTS)
        assert [row["label"] for row in rows] == [a for _, a in FACTS]
        assert [row["predict"] for row in rows] == [s.outputs[label].text for s in results.samples]
        # the prompt went through the chatml template (the adapter's own, and the one named for the base)
        assert rows[0]["prompt"].startswith("<|im_start|>") and rows[0]["prompt"].endswith("<|im_start|>assistant\n")
        assert f"<|im_start|>system\n{SYSTEM}<|im_end|>" in rows[1]["prompt"]


def test_events_progress_to_100_and_complete_once(evaluation) -> None:
    job, results, events = evaluation
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "completed" and types.count("completed") == 1
    assert events[0]["models"] == ["base", "fine-tuned"]
    progress = [e for e in events if e["type"] == "progress"]
    percentages = [e["percentage"] for e in progress]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert {"data", "loading", "loss", "generation", "results"} <= {e["stage"] for e in progress}
    final = events[-1]
    assert final["split"] == "test" and final["samples"] == len(FACTS)
    assert final["scores"]["fine-tuned"]["rouge_l"] == results.models[1].rouge_l
    assert final["scores"]["base"]["graders"] == results.models[0].graders  # the headline scores name the graders
    assert "grading" in {e["stage"] for e in progress}
    assert final["predictions"]["base"] == str(job / "base" / PREDICTIONS_FILE)
    assert "eval_loss" in (job / "evaluate.log").read_text()


def test_batching_changes_no_score(tiny_model_dir: Path, adapter_dir: Path, facts_dir: Path) -> None:
    """Left padding must not move the loss or the greedy answers: batch 1 and batch 4 agree."""
    from tuneforge.engine.eval_batches import generate_answers, reference_losses
    from tuneforge.engine.evaluate import load_held_out
    from tuneforge.engine.generate import load_chat_model

    records = load_held_out(EvalSpec(models=[{"label": "x", "base_model": "x"}], dataset=str(facts_dir))).records
    chat = load_chat_model(str(tiny_model_dir), str(adapter_dir))
    losses = [reference_losses(chat, records, 1024, size, lambda done, total: None) for size in (1, 4)]
    assert losses[0].mean == pytest.approx(losses[1].mean, abs=1e-5)
    assert losses[0].per_sample == pytest.approx(losses[1].per_sample, abs=1e-5)
    answers = [generate_answers(chat, records, max_new_tokens=16, cutoff_len=1024, batch_size=size, temperature=0,
                                top_p=1, seed=0, on_batch=lambda done, total: None).answers for size in (1, 4)]
    assert answers[0] == answers[1]


def test_test_split_falls_back_to_valid(tmp_path: Path) -> None:
    from tuneforge.engine.evaluate import load_held_out

    rows = [{"instruction": q, "input": "", "output": a} for q, a in FACTS]
    (tmp_path / "train.jsonl").write_text(_alpaca(rows))
    (tmp_path / "valid.jsonl").write_text(_alpaca(rows[:2]))
    held = load_held_out(EvalSpec(models=[{"label": "x", "base_model": "x"}], dataset=str(tmp_path), max_samples=5))
    assert held.split == "valid" and [r.messages[-1].content for r in held.records] == [a for _, a in FACTS[:2]]


def test_loss_only_on_a_registered_dataset_version(tiny_model_dir: Path, facts_dir: Path, tmp_path: Path) -> None:
    """A dataset_info.json key naming a version folder (how the service registers datasets); predict: false
    scores the loss only and ranks the samples by it."""
    from tuneforge.engine.evaluate import run_evaluation
    from tuneforge.rundir import EventWriter

    (tmp_path / "dataset_info.json").write_text(json.dumps({"facts@v1": {"file_name": str(facts_dir)}}))
    spec = EvalSpec(models=[{"label": "base", "base_model": str(tiny_model_dir), "template": "chatml"}],
                    dataset="facts@v1", dataset_dir=str(tmp_path), predict=False, max_samples=4, show_samples=1)
    results, predictions = run_evaluation(spec, EventWriter(tmp_path / "events.jsonl"), tmp_path)
    (scores,) = results.models
    assert results.split == "test" and len(results.samples) == 4 and predictions == {}
    assert scores.eval_loss is not None and scores.bleu_4 is None and scores.rouge_l is None
    outputs = [s.outputs["base"] for s in results.samples]
    assert all(o.text == "" and o.rouge_l is None and o.loss is not None for o in outputs)
    losses = [o.loss for o in outputs]
    assert scores.best == [losses.index(min(losses))] and scores.worst == [losses.index(max(losses))]
    assert not list(tmp_path.glob(f"*/{PREDICTIONS_FILE}"))


def _run_main(job: Path, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """main() in this process, leaving the root logger as it found it (main points it at the job's log)."""
    from tuneforge.engine.evaluate import main

    job.mkdir()
    (job / "SPEC.json").write_text(json.dumps(spec))
    handlers = logging.getLogger().handlers[:]
    try:
        code = main([str(job / "SPEC.json")])
    finally:
        for handler in logging.getLogger().handlers:
            if handler not in handlers:
                handler.close()
        logging.getLogger().handlers[:] = handlers
    events = read_events(job / "events.jsonl")
    assert [e["type"] for e in events][-1] == "failed" and [e["type"] for e in events].count("failed") == 1
    return code, events[-1]


def test_bad_input_fails_with_what_to_fix(tiny_model_dir: Path, memorise_file: Path, tmp_path: Path) -> None:
    model = {"label": "base", "base_model": str(tiny_model_dir)}
    text_dir = tmp_path / "pretrain"
    text_dir.mkdir()
    (text_dir / "test.jsonl").write_text(_alpaca([{"text": "Waves fold into foam."}]))
    cases = {
        # a single file has no held-out split: the message names the dataset
        "no-split": ({"models": [model], "dataset": str(memorise_file)}, [str(memorise_file), "no test or valid"]),
        "no-dataset": ({"models": [model], "dataset": str(tmp_path / "missing.jsonl")}, ["missing.jsonl", "not found"]),
        "not-sft": ({"models": [model], "dataset": str(text_dir)}, ["pre-training text"]),
        "no-model": ({"models": [model, {"label": "tuned", "base_model": str(tmp_path / "nowhere")}],
                      "dataset": str(memorise_file)}, ["models[1] (tuned)", "nowhere"]),
        "no-adapter": ({"models": [{**model, "adapter_dir": str(tmp_path)}], "dataset": str(memorise_file)},
                       ["adapter_dir", "adapter_config.json"]),
        "bad-spec": ({"models": [model], "dataset": "x", "batch_size": 0}, ["batch_size"]),
    }
    for name, (spec, words) in cases.items():
        code, final = _run_main(tmp_path / f"job-{name}", spec)
        assert code == 2, (name, final)
        assert all(word in final["error"] for word in words), (name, final)
        assert final["hint"] and "Traceback" not in final["error"], (name, final)


@pytest.mark.slow
def test_bundled_smollm2_before_and_after_an_identity_adapter(tmp_path: Path) -> None:
    """The real before / after: SmolLM2 vs SmolLM2 + a LoRA adapter trained for a few steps on the shipped identity
    set, scored on held-out identity questions (three English, one Chinese)."""
    import time
    from importlib import resources

    from tests.integration.engine.conftest import run_in_process

    rows = json.loads((resources.files("tuneforge") / "resources" / "datasets" / "identity.json").read_text())
    held_out = [1, 13, 31, 77]
    data = tmp_path / "identity"
    data.mkdir()
    (data / "train.jsonl").write_text(_alpaca([r for k, r in enumerate(rows) if k not in held_out]))
    (data / "test.jsonl").write_text(_alpaca([rows[k] for k in held_out]))
    system = "You are a helpful AI assistant."  # SmolLM2's default system prompt names SmolLM (see cli.demo)
    config = {"model_name_or_path": "bundled", "stage": "sft", "finetuning_type": "lora", "template": "smollm2",
              "default_system": system, "dataset": [str(data / "train.jsonl")], "cutoff_len": 96, "lora_rank": 16,
              "lora_alpha": 32, "lora_target": ["all"], "learning_rate": 2e-3, "max_steps": 6,
              "per_device_train_batch_size": 8, "save_strategy": "no", "output_dir": str(tmp_path / "adapter"),
              "seed": 42, "report_to": "none"}
    code, _ = run_in_process(tmp_path / "run", config)
    assert code == 0
    job = tmp_path / "job"
    job.mkdir()
    spec = EvalSpec(models=[{"label": "base", "base_model": "bundled", "template": "smollm2", "system": system},
                            {"label": "identity", "base_model": "bundled", "adapter_dir": str(tmp_path / "adapter")}],
                    dataset=str(data), max_new_tokens=20, batch_size=4, show_samples=1)
    (job / "SPEC.json").write_text(spec.model_dump_json())
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tuneforge.engine.evaluate", str(job / "SPEC.json")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = EvalResults.model_validate_json((job / RESULTS_FILE).read_text())
    base, tuned = results.models
    for m in results.models:
        print(f"{m.label}: loss {m.eval_loss} ppl {m.perplexity} bleu-4 {m.bleu_4} rouge-l {m.rouge_l} "
              f"({m.runtime_s} s, {m.tokens_per_second} tok/s)")
    print(f"job: {time.perf_counter() - started:.1f} s")
    assert tuned.eval_loss < base.eval_loss and tuned.rouge_l > base.rouge_l
    english = [s for s in results.samples if s.reference.isascii()]
    assert sum("Forge" in s.outputs["identity"].text for s in english) >= 2, [s.outputs for s in english]
    assert not any("Forge" in s.outputs["base"].text for s in results.samples)
