"""Model evaluation, run as a background job: `python -m tuneforge.engine.evaluate SPEC.json`.

Scores each model of the spec (base, or base + adapter) on the same held-out samples of an SFT dataset: eval loss and
perplexity on the reference answers, then generated answers scored with BLEU-4 and ROUGE-1/2/L (data.text_metrics,
LLaMA-Factory's 0-100 scale) and with the spec's graders (tuneforge.graders: each answer is the sample, its dataset
row the item — see schemas.eval_spec for the item's fields), and the best / worst samples of each. Two models give
the before / after comparison.
Writes next to SPEC.json: events.jsonl (started, progress with stage / percentage / message, then one completed or
failed), evaluate.log, results.json (schemas.eval_spec.EvalResults) and <label>/generated_predictions.jsonl.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.data.records import PROMPT_ROLES, ChatRecord, DatasetError, PromptRecord
from tuneforge.data.text_metrics import load_segmenter, mean_scores, score_text
from tuneforge.engine.background_job import run_job
from tuneforge.engine.errors import EngineError
from tuneforge.engine.eval_batches import generate_answers, prompt_messages, reference_losses
from tuneforge.graders import grade_samples
from tuneforge.rundir import EventWriter
from tuneforge.schemas.eval_spec import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    EvalModel,
    EvalResults,
    EvalSample,
    EvalSpec,
    ModelScores,
    SampleScore,
)
from tuneforge.schemas.events import EventType

log = logging.getLogger("tuneforge.evaluate")

SFT_HINT = ("evaluation scores SFT records, each ending with the reference answer: alpaca (instruction / input / "
            "output) or sharegpt (conversations / messages)")
HEADLINE = ("eval_loss", "perplexity", "bleu_4", "rouge_1", "rouge_2", "rouge_l")


@dataclass
class HeldOut:
    """The samples to score and the split they came from ('valid' when a test split was asked for but missing);
    `rows` holds each record's dataset row as the file has it, by the record's origin (file:line), when asked for."""

    records: list[ChatRecord]
    split: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)


class EvalProgress:
    """progress events with an overall percentage: data 0-5, each model an equal slice of 5-95, results 95-100.

    Batch updates within a stage are thinned to one per 0.5 % or 5 s: a large split has thousands of batches and
    every event is an fsync'd line the service reads."""

    MIN_STEP, MIN_SECONDS = 0.5, 5.0

    def __init__(self, events: Any, n_models: int) -> None:
        self.events, self.n_models = events, n_models
        self.last: tuple[str, float, float] = ("", -1.0, 0.0)  # stage, percentage, time

    def report(self, percentage: float, message: str, stage: str, *, batch: bool = False) -> None:
        last_stage, last_percentage, last_time = self.last
        now = time.monotonic()
        if (batch and stage == last_stage and percentage - last_percentage < self.MIN_STEP
                and now - last_time < self.MIN_SECONDS):
            return
        self.last = (stage, percentage, now)
        log.info("%5.1f%% %s", percentage, message)
        self.events.emit(EventType.PROGRESS, stage=stage, percentage=round(percentage, 1), message=message)

    def in_model(self, index: int, fraction: float, message: str, stage: str, *, batch: bool = False) -> None:
        """`fraction` (0-1) of model `index`'s slice done."""
        self.report(5 + 90 * (index + fraction) / self.n_models, message, stage, batch=batch)


def run_evaluation(spec: EvalSpec, events: Any, job_dir: Path) -> tuple[EvalResults, dict[str, str]]:
    """The whole job: writes results.json and the predictions files into job_dir; returns the results and the
    predictions file of each model label."""
    progress = EvalProgress(events, len(spec.models))
    progress.report(0, f"reading the {spec.split} split of {spec.dataset}", "data")
    for index, model in enumerate(spec.models):  # a typo in the second model fails now, not after the first is scored
        check_model(model, index)
    held_out = load_held_out(spec, with_rows=bool(spec.graders))
    records = held_out.records
    progress.report(5, f"{len(records)} samples from the {held_out.split} split of {spec.dataset}", "data")
    samples = [_sample(k, r) for k, r in enumerate(records)]
    if spec.graders:
        for sample, record in zip(samples, records, strict=True):
            sample.item = grader_item(record, held_out.rows.get(record.origin))
    if spec.predict:
        load_segmenter()  # jieba's dictionary loads once here, not inside the first model's runtime
    scores, predictions = [], {}
    for index, model in enumerate(spec.models):
        model_scores, answers = score_model(spec, model, index, records, samples, progress)
        scores.append(model_scores)
        if answers is not None:
            predictions[model.label] = answers
    progress.report(95, f"writing {RESULTS_FILE}", "results")
    results = EvalResults(models=scores, samples=samples, dataset=spec.dataset, split=held_out.split)
    (job_dir / RESULTS_FILE).write_text(results.model_dump_json(indent=2), encoding="utf-8")
    paths = write_predictions(job_dir, predictions)
    progress.report(100, "evaluation done", "results")
    return results, paths


def check_model(model: EvalModel, index: int) -> None:
    """The model and the adapter exist (loading comes later, one model at a time)."""
    from tuneforge.engine.models import resolve_model_source

    where = f"models[{index}] ({model.label})"
    try:
        resolve_model_source(model.base_model)
    except EngineError as exc:
        raise EngineError(f"{where}: base_model: {exc}", hint=exc.hint) from exc
    if model.adapter_dir and not Path(model.adapter_dir, "adapter_config.json").is_file():
        raise EngineError(f"{where}: adapter_dir: {model.adapter_dir} is not an adapter directory (no "
                          "adapter_config.json)", hint="give the output_dir of a LoRA run, or leave adapter_dir empty")


def load_held_out(spec: EvalSpec, with_rows: bool = False) -> HeldOut:
    """The first max_samples SFT records of the split, read with the data package's own loaders; `with_rows` also
    keeps each record's dataset row, for graders."""
    from tuneforge.data.prepare import load_files
    from tuneforge.data.sources import DatasetConfigError, DatasetNotFound, resolve_dataset_sources

    try:
        sources = resolve_dataset_sources(spec.dataset, spec.dataset_dir)
    except DatasetNotFound as exc:
        raise EngineError(str(exc), hint="register the dataset or give a file / folder that exists") from exc
    except DatasetConfigError as exc:
        raise EngineError(f"dataset: {exc}", hint=SFT_HINT) from exc
    if not sources:
        raise EngineError("dataset: no dataset given", hint="name a dataset with a test (or valid) split")
    records: list[ChatRecord] = []
    splits: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    for source in sources:
        split, files = split_files(source, spec.split)
        remaining = spec.max_samples - len(records)
        if remaining <= 0:
            break
        try:
            found = load_files(source, files, "chat", remaining)
        except DatasetError as exc:
            raise EngineError(f"dataset {source.name!r} ({split} split): {exc}", hint=SFT_HINT) from exc
        if not all(isinstance(r, ChatRecord) for r in found):
            raise EngineError(f"dataset {source.name!r} ({', '.join(map(str, files))}) holds pre-training text, "
                              "not prompts with reference answers", hint=SFT_HINT)
        records += found  # type: ignore[arg-type]
        splits.append(split)
        if with_rows:
            rows |= dataset_rows(source, files, remaining)
    return HeldOut(records, ",".join(dict.fromkeys(splits)), rows)


def dataset_rows(source: Any, files: list[Path], limit: int) -> dict[str, dict[str, Any]]:
    """Each record's row as the file has it, by origin: the same files read as prompts (the reader GRPO uses),
    whose records keep their row. A row it cannot read is left out (its item is then the reference answer alone)."""
    from tuneforge.data.prepare import load_files

    try:
        prompts = load_files(source, files, "prompt", limit)
    except DatasetError as exc:
        log.warning("graders see only item.reference_answer: the rows of %s are not readable as prompts (%s)",
                    source.name, exc)
        return {}
    return {record.origin: dict(record.item) for record in prompts if isinstance(record, PromptRecord)}


def grader_item(record: ChatRecord, row: dict[str, Any] | None) -> dict[str, Any]:
    """The `item` graders read for this record: its dataset row, plus `reference_answer` (the answer the model is
    scored against) unless the row has a field of that name itself."""
    return {"reference_answer": record.messages[-1].content, **(row or {})}


def split_files(source: Any, split: str) -> tuple[str, list[Path]]:
    """(split used, its files): a dataset folder's test / valid / train file; 'test' falls back to 'valid'."""
    from tuneforge.data.reading import SUFFIXES

    def in_folder(name: str) -> list[Path]:
        if source.directory is None:
            return []
        return [p for p in (source.directory / f"{name}{suffix}" for suffix in SUFFIXES) if p.is_file()][:1]

    if split == "train":
        return split, list(source.files)
    if split == "test" and (found := in_folder("test")):
        return "test", found
    valid = list(source.eval_files) or in_folder("valid")
    if valid:
        return "valid", valid
    what = "test or valid split" if split == "test" else "valid split"
    where = (f"its folder {source.directory} has no {split}.jsonl" + (" or valid.jsonl" if split == "test" else "")
             if source.directory is not None else f"it is the single file {source.files[0]}")
    raise EngineError(f"dataset {source.name!r} has no {what}: {where}",
                      hint="evaluate on held-out samples: give a dataset folder with test.jsonl (or valid.jsonl) "
                           "beside train.jsonl, or set split: train to score the training samples")


def score_model(spec: EvalSpec, model: EvalModel, index: int, records: list[ChatRecord], samples: list[EvalSample],
                progress: EvalProgress) -> tuple[ModelScores, list[dict[str, str]] | None]:
    """Load one model, run the loss and generation passes, fill each sample's outputs, then free the model.
    Returns the model's scores and its predictions rows (None when nothing was generated)."""
    label = model.label
    adapter = f" with the adapter {model.adapter_dir}" if model.adapter_dir else ""
    progress.in_model(index, 0, f"{label}: loading {model.base_model}{adapter}", "loading")
    chat = _load(model, index)
    started = time.perf_counter()  # runtime_s is the scoring, as LLaMA-Factory's predict_runtime (no loading)
    scores = ModelScores(label=label, samples=len(records))
    # the model's slice: loading 0-0.1, then the loss, then generation (the slow part) from `generation_from`
    generation_from = (0.4 if spec.predict else 1.0) if spec.compute_loss else 0.1
    per_sample_loss: list[float | None] = [None] * len(records)
    if spec.compute_loss:
        losses = reference_losses(chat, records, spec.cutoff_len, spec.batch_size,
                                  _on_batch(progress, index, f"{label}: loss", "loss", 0.1, generation_from))
        per_sample_loss = losses.per_sample
        if losses.mean is not None:
            scores.eval_loss = round(losses.mean, 6)
            scores.perplexity = round(math.exp(losses.mean), 4) if losses.mean < 700 else None
        log.info("%s: eval_loss %s perplexity %s over %d answer tokens", label, scores.eval_loss, scores.perplexity,
                 losses.tokens)
    rows, text_scores, graded = None, None, None
    if spec.predict:
        generated = generate_answers(
            chat, records, max_new_tokens=spec.max_new_tokens, cutoff_len=spec.cutoff_len, batch_size=spec.batch_size,
            temperature=spec.temperature, top_p=spec.top_p, seed=spec.seed,
            on_batch=_on_batch(progress, index, f"{label}: generating", "generation", generation_from, 1.0))
        text_scores = [score_text(a, s.reference) for a, s in zip(generated.answers, samples, strict=True)]
        scores = scores.model_copy(update=mean_scores(text_scores))
        tps = generated.tokens_per_second
        scores.tokens_per_second = round(tps, 2) if tps is not None else None
        rows = [{"prompt": p, "predict": a, "label": s.reference}
                for p, a, s in zip(generated.prompts, generated.answers, samples, strict=True)]
        if spec.graders:
            progress.in_model(index, 1.0, f"{label}: grading with {', '.join(g.name for g in spec.graders)}",
                              "grading")
            graded = grade_answers(spec, generated.answers, samples)
            scores.graders, scores.grader_failures = graded.means, graded.failures
    for k, sample in enumerate(samples):
        text = {"text": rows[k]["predict"], **text_scores[k].as_dict()} if rows and text_scores else {}
        by_grader = graded.per_sample[k] if graded else {}
        sample.outputs[label] = SampleScore(**text, loss=_rounded(per_sample_loss[k]), **by_grader)
    scores.best, scores.worst = rank_samples(samples, label, spec.show_samples)
    scores.runtime_s = round(time.perf_counter() - started, 2)
    del chat  # the next model loads into the memory this one held
    _free_memory()
    log.info("%s: %s in %.1f s", label, {k: getattr(scores, k) for k in HEADLINE}, scores.runtime_s)
    return scores, rows


@dataclass
class GradedAnswers:
    means: dict[str, float]  # grader name -> mean score over the samples (a failed sample counts 0)
    failures: dict[str, int]  # grader name -> samples that scored 0 because grading failed (only if any)
    per_sample: list[dict[str, dict[str, Any]]]  # SampleScore fields: graders, grader_errors


def grade_answers(spec: EvalSpec, answers: list[str], samples: list[EvalSample]) -> GradedAnswers:
    """Every grader over one model's answers, with each sample's item: `grade_samples` as a GRPO reward calls it."""
    answer_samples = [{"output_text": answer} for answer in answers]
    items = [sample.item or {} for sample in samples]
    per_sample: list[dict[str, dict[str, Any]]] = [{"graders": {}, "grader_errors": {}} for _ in samples]
    means, failures = {}, {}
    for grader in spec.graders:
        results = grade_samples(grader, answer_samples, items)
        for k, result in enumerate(results):
            per_sample[k]["graders"][grader.name] = result.score
            if result.reason:
                per_sample[k]["grader_errors"][grader.name] = result.reason
        means[grader.name] = round(sum(r.score for r in results) / len(results), 6) if results else 0.0
        if failed := sum(1 for r in results if r.reason):
            failures[grader.name] = failed
            log.warning("grader %s could not grade %d of %d answers, e.g.: %s", grader.name, failed, len(results),
                        next(r.reason for r in results if r.reason))
    return GradedAnswers(means, failures, per_sample)


def _on_batch(progress: EvalProgress, index: int, what: str, stage: str, start: float,
              end: float) -> Callable[[int, int], None]:
    """A pass's batch callback: its share (start-end) of model `index`'s slice, thinned except the last batch."""
    def report(done: int, total: int) -> None:
        progress.in_model(index, start + (end - start) * done / total, f"{what} {done}/{total}", stage,
                          batch=done < total)

    return report


def _load(model: EvalModel, index: int) -> Any:
    from tuneforge.engine.generate import load_chat_model

    where = f"models[{index}] ({model.label})"
    try:
        chat = load_chat_model(model.base_model, model.adapter_dir, model.template, model.system)
    except EngineError as exc:
        raise EngineError(f"{where}: {exc}", hint=exc.hint) from exc
    except (OSError, ValueError) as exc:  # a folder without weights, an unknown template, a broken adapter
        log.error("loading %s failed:\n%s", where, traceback.format_exc())
        raise EngineError(f"{where}: cannot load {model.base_model}"
                          + (f" with {model.adapter_dir}" if model.adapter_dir else "") + f": {exc}",
                          hint="check the model directory (config.json and weights), the adapter and the "
                               "template name") from exc
    import torch

    if torch.cuda.is_available():
        chat.model.to("cuda")
    return chat


def rank_samples(samples: list[EvalSample], label: str, count: int) -> tuple[list[int], list[int]]:
    """Best first and worst first, by ROUGE-L then BLEU-4; by loss when nothing was generated."""
    if count == 0:
        return [], []

    def key(sample: EvalSample) -> tuple[float, float]:
        output = sample.outputs[label]
        if output.rouge_l is not None:
            return output.rouge_l, output.bleu_4 or 0.0
        return (-output.loss if output.loss is not None else -math.inf), 0.0

    scored = [s for s in samples if key(s)[0] != -math.inf]
    best = sorted(scored, key=lambda s: (-key(s)[0], -key(s)[1], s.index))
    worst = sorted(scored, key=lambda s: (key(s)[0], key(s)[1], s.index))
    return [s.index for s in best[:count]], [s.index for s in worst[:count]]


def write_predictions(job_dir: Path, predictions: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    """JOB/<label>/generated_predictions.jsonl per model, in LLaMA-Factory's layout; returns label -> path."""
    paths: dict[str, str] = {}
    used: set[str] = set()
    for label, rows in predictions.items():
        folder = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "model"
        while folder in used:  # two labels that differ only in odd characters
            folder += "_"
        used.add(folder)
        path = job_dir / folder / PREDICTIONS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        paths[label] = str(path)
    return paths


def _sample(index: int, record: ChatRecord) -> EvalSample:
    messages = prompt_messages(record)
    prompt = next((m.content for m in reversed(record.messages[:-1]) if m.role in PROMPT_ROLES), "")
    return EvalSample(index=index, prompt=prompt, messages=messages, reference=record.messages[-1].content)


def _rounded(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def _free_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    return run_job(argv, "tuneforge.engine.evaluate", "evaluate.log", "evaluation", _evaluate)


def _evaluate(spec_file: Path, events: EventWriter) -> None:
    job_dir = spec_file.parent
    spec = EvalSpec.model_validate_json(spec_file.read_text(encoding="utf-8"))
    events.emit(EventType.STARTED, pid=os.getpid(), models=[m.label for m in spec.models], dataset=spec.dataset,
                split=spec.split)
    results, predictions = run_evaluation(spec, events, job_dir)
    scores = {m.label: {k: getattr(m, k) for k in HEADLINE} | ({"graders": m.graders} if m.graders else {})
              for m in results.models}
    events.emit(EventType.COMPLETED, results_file=str(job_dir / RESULTS_FILE), split=results.split,
                samples=len(results.samples), scores=scores, predictions=predictions)


if __name__ == "__main__":
    sys.exit(main())
