"""Dataset preview: the first records rendered through a chat template, with the tokens trained on and masked.

Torch-free, for the API process. It runs the very code training runs (get_template, fix_tokenizer, encode_chat,
encode_pretrain) on a FastTokenizer built from the same files, so the tokens the console shows as trained are
exactly the ones the loss is computed on. A preference pair (DPO, reward modelling) shows its prompt once and the
chosen and rejected answers side by side; a KTO sample carries its desirable / undesirable label. Both train on the
last answer only, never on the prompt, as TRL's trainers do. A prompt (GRPO, PPO) is rendered as those stages encode
it, ending with the assistant header where sampling starts, with its dataset row: the `item` graders read.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tuneforge.data.formats import PURPOSE_KINDS, RecordFormat, RecordKind, convert_object, detect_formatting
from tuneforge.data.reading import iter_objects, make_format
from tuneforge.data.records import ChatRecord, DatasetProblem, KTORecord, PreferenceRecord, PromptRecord, TextRecord
from tuneforge.data.templates import ChatTemplate, fix_tokenizer, get_template, system_with_tools
from tuneforge.data.tokenize import IGNORE_INDEX, EncodedSample, encode_chat, encode_pretrain
from tuneforge.data.tokenize_pairs import encode_prompt
from tuneforge.data.tokenizer_file import FastTokenizer

PREVIEW_STAGES = ("sft", "pt")
MAX_KEPT_SKIPPED = 100  # problems met while looking for valid records; beyond this only the count grows
Record = ChatRecord | TextRecord
PreviewRecord = ChatRecord | TextRecord | PreferenceRecord | PromptRecord  # a KTORecord is a ChatRecord with a label


class PreviewSegment(BaseModel):
    """A run of consecutive tokens that are all trained on, or all masked."""

    text: str
    trained: bool
    tokens: int = Field(description="number of tokens in the run")


class AnswerPreview(BaseModel):
    """One answer of a preference pair as training sees it: the prompt's tokens are counted, not repeated."""

    segments: list[PreviewSegment] = Field(default_factory=list, description="the answer (after the prompt)")
    token_count: int = Field(0, description="tokens of prompt + this answer")
    trained_count: int = 0
    truncated: bool = False
    tokens_cut: int = 0
    dropped: bool = Field(False, description="nothing of the answer is left to train on")
    tokens: list[tuple[str, bool]] | None = None


class SamplePreview(BaseModel):
    """One record as training sees it."""

    origin: str = Field(description="file:line the record comes from")
    kind: RecordKind = Field("chat", description="chat | text | preference | kto | prompt")
    segments: list[PreviewSegment] = Field(default_factory=list)
    token_count: int = 0
    trained_count: int = Field(0, description="tokens the loss is computed on")
    truncated: bool = Field(False, description="longer than cutoff_len: tokens_cut tokens were cut")
    tokens_cut: int = 0
    dropped: bool = Field(False, description="no token is trained on, so training skips the record")
    tokens: list[tuple[str, bool]] | None = Field(
        None, description="per token: the text it adds and whether it is trained on (when asked)")
    error: str | None = Field(None, description="why the record cannot be encoded (training would fail on it)")
    chosen: AnswerPreview | None = Field(None, description="preference: the better answer (`segments` is the prompt)")
    rejected: AnswerPreview | None = Field(None, description="preference: the worse answer")
    label: bool | None = Field(None, description="KTO: true for a desirable answer, false for an undesirable one")
    item: dict[str, Any] | None = Field(None, description="prompt: the dataset row as the file has it, which graders "
                                        "read as {{item.…}} (e.g. the reference answer)")


@dataclass
class PreviewRecords:
    """The first valid records of some files, and the problems met on the way to them."""

    records: list[PreviewRecord] = field(default_factory=list)
    skipped: list[DatasetProblem] = field(default_factory=list)
    skipped_total: int = 0


def bind_template(template: str | None, tokenizer: FastTokenizer) -> tuple[ChatTemplate, FastTokenizer]:
    """The template and a copy of the tokenizer fixed as training fixes it (end-of-turn token as eos, missing
    stop words added); the caller's tokenizer is left unchanged. Raises UnknownTemplate naming `template`."""
    working = tokenizer.copy()
    chosen = get_template(template, working)
    fix_tokenizer(working, chosen)
    return chosen, working


def preview_records(
    records: Sequence[PreviewRecord],
    *,
    template: str | None,
    tokenizer: FastTokenizer,
    cutoff_len: int,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    default_system: str | None = None,
    stage: str = "sft",
    packing: bool | None = None,
    token_view: bool = False,
) -> list[SamplePreview]:
    """Each record encoded as training encodes it, as coloured segments (and per-token when `token_view`).

    Stage sft masks prompts (unless `train_on_prompt`) and earlier answers (with `mask_history`); stage pt trains
    every token. With packing (pt's default) a long document is not cut, it flows into the next block. Preference
    pairs and KTO samples train on their last answer only, whatever `train_on_prompt` and `mask_history` say; a
    prompt trains on nothing (its answers are sampled during training), and a long one loses its beginning.
    """
    _check_options(stage, cutoff_len)
    chosen, working = bind_template(template, tokenizer)
    options = {"train_on_prompt": train_on_prompt, "mask_history": mask_history, "default_system": default_system}
    concatenated = stage == "pt" and (packing is None or packing)
    previews = []
    for record in records:
        try:
            if stage == "pt":
                sample, cut = _encode_text(record, working, cutoff_len, concatenated)
            elif isinstance(record, PreferenceRecord):
                previews.append(_preference_preview(record, chosen, working, cutoff_len, options, token_view))
                continue
            elif isinstance(record, PromptRecord):
                previews.append(_prompt_preview(record, chosen, working, cutoff_len, default_system, token_view))
                continue
            elif isinstance(record, KTORecord):
                sample, cut = _encode_chat(record, chosen, working, cutoff_len, {**options, **LAST_ANSWER_ONLY})
            else:
                sample, cut = _encode_chat(record, chosen, working, cutoff_len, options)
        except ValueError as error:  # a tokenizer template that refuses the conversation, a wrong record kind
            previews.append(SamplePreview(origin=record.origin, kind=_kind_of(record), error=str(error)))
            continue
        preview = _sample_preview(record.origin, sample, cut, working, token_view)
        preview.kind = _kind_of(record)
        if isinstance(record, KTORecord):
            preview.label = record.label
        previews.append(preview)
    return previews


def render_text(
    record: Record,
    *,
    template: str | ChatTemplate | None,
    tokenizer: FastTokenizer,
    default_system: str | None = None,
) -> str:
    """The whole record as text through the template, before tokenisation and truncation (a document gets the
    eos text training appends). Pass a ChatTemplate from bind_template (with its tokenizer) to reuse one."""
    if isinstance(template, ChatTemplate):
        chosen, working = template, tokenizer
    else:
        chosen, working = bind_template(template, tokenizer)
    if isinstance(record, TextRecord):
        return record.text + (working.eos_token or "")
    system = system_with_tools(record.system if record.system is not None else default_system, record.tools,
                               chosen.default_system)
    eos = (working.eos_token or "") if chosen.spec.append_eos else ""
    return "".join(prompt + response + (eos if response else "")
                   for prompt, response in chosen.turn_texts(record.messages, system))


def load_preview(
    files: Sequence[Path],
    n: int,
    formatting: str | None = None,
    columns: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    *,
    stage: str = "sft",
    names: Sequence[str] | None = None,
    purpose: str | None = None,
) -> PreviewRecords:
    """The first `n` valid records of the files in order, reading no further than needed; invalid ones are
    skipped and listed. `names` are the file names to show in origins (e.g. the uploaded name of a stored file).
    Without formatting / columns / tags each file's format is detected from its first object; without a
    `purpose` (sft, preference, kto, prompt) for stage sft, so is the record kind: chosen and rejected fields make
    preference pairs, a kto_tag field KTO samples (the columns mapping names them as LLaMA-Factory's does)."""
    if n < 1:
        raise ValueError(f"n: the number of records to preview must be at least 1, got {n}")
    if stage not in PREVIEW_STAGES:
        raise ValueError(f"stage: the preview supports {' and '.join(PREVIEW_STAGES)}, not {stage!r}")
    if names is not None and len(names) != len(files):
        raise ValueError(f"names: expected one display name per file ({len(files)}), got {len(names)}")
    if purpose is not None and purpose not in PURPOSE_KINDS:
        raise ValueError(f"purpose: unknown value {purpose!r}; use one of {', '.join(PURPOSE_KINDS)}")
    kind: RecordKind | None = "text" if stage == "pt" else PURPOSE_KINDS[purpose] if purpose else None
    given = make_format(formatting, columns, tags)
    result = PreviewRecords()
    for index, path in enumerate(files):
        display = names[index] if names is not None else str(path)
        for item in _file_records(Path(path), display, given, kind):
            if isinstance(item, DatasetProblem):
                result.skipped_total += 1
                if len(result.skipped) < MAX_KEPT_SKIPPED:
                    result.skipped.append(item)
                continue
            result.records.append(item)
            if len(result.records) >= n:
                return result
    return result


def _file_records(
    path: Path, display: str, fmt: RecordFormat | None, kind: RecordKind | None
) -> Iterator[PreviewRecord | DatasetProblem]:
    for item in iter_objects(path, display):
        if isinstance(item, DatasetProblem):
            yield item
            continue
        line, obj = item
        if fmt is None:
            detected = detect_formatting(obj)
            if detected is None:
                yield DatasetProblem(display, line, "", "cannot tell the dataset format: expected 'instruction'/"
                                     "'output' (alpaca), 'conversations'/'messages' (sharegpt) or 'text' "
                                     "(pre-training); give the formatting and columns")
                return
            fmt = RecordFormat(detected)
        if kind is None:
            kind = _detect_kind(obj, fmt)
        record, problems = convert_object(obj, fmt, display, line, kind)
        yield from problems
        if record is not None:
            yield record


def _detect_kind(obj: object, fmt: RecordFormat) -> RecordKind:
    """A file's record kind told from its first object: chosen and rejected answers, a KTO label, or a chat."""
    if isinstance(obj, dict):
        if fmt.column("chosen") in obj and fmt.column("rejected") in obj:
            return "preference"
        if fmt.column("kto_tag") in obj:
            return "kto"
    return "chat"


def _kind_of(record: PreviewRecord) -> RecordKind:
    if isinstance(record, PreferenceRecord):
        return "preference"
    if isinstance(record, TextRecord):
        return "text"
    if isinstance(record, PromptRecord):
        return "prompt"
    return "kto" if isinstance(record, KTORecord) else "chat"


def _check_options(stage: str, cutoff_len: int) -> None:
    if stage not in PREVIEW_STAGES:
        raise ValueError(f"stage: the preview supports {' and '.join(PREVIEW_STAGES)}, not {stage!r}")
    if cutoff_len < 1:
        raise ValueError(f"cutoff_len: must be at least 1, got {cutoff_len}")


def _encode_chat(
    record: PreviewRecord, template: ChatTemplate, tokenizer: FastTokenizer, cutoff_len: int, options: dict
) -> tuple[EncodedSample, int]:
    if not isinstance(record, ChatRecord):
        raise ValueError("stage sft needs a conversation (instruction / messages), not a plain text document")
    sample = encode_chat(record, template, tokenizer, cutoff_len, **options)
    if not sample.truncated:
        return sample, 0
    whole = encode_chat(record, template, tokenizer, sys.maxsize, **options)
    return sample, len(whole.input_ids) - len(sample.input_ids)


def _encode_text(
    record: PreviewRecord, tokenizer: FastTokenizer, cutoff_len: int, concatenated: bool
) -> tuple[EncodedSample, int]:
    if not isinstance(record, TextRecord):
        raise ValueError("stage pt needs a text document ('text' column), not a conversation")
    [whole] = encode_pretrain([record], tokenizer, sys.maxsize, packing=False)
    if concatenated or len(whole.input_ids) <= cutoff_len:
        return whole, 0
    [sample] = encode_pretrain([record], tokenizer, cutoff_len, packing=False)
    return sample, len(whole.input_ids) - len(sample.input_ids)


# Preference and KTO trainers compute their loss on the last answer only; earlier turns are part of the prompt.
LAST_ANSWER_ONLY = {"train_on_prompt": False, "mask_history": True}


def _preference_preview(
    record: PreferenceRecord, template: ChatTemplate, tokenizer: FastTokenizer, cutoff_len: int, options: dict,
    token_view: bool,
) -> SamplePreview:
    """The prompt once (as the chosen side encodes it) and each answer after it, each side encoded as a whole
    conversation ending with that answer and cut at cutoff_len on its own."""
    options = {**options, **LAST_ANSWER_ONLY}
    sides = []
    for answer in (record.chosen, record.rejected):
        conversation = ChatRecord([*record.messages, answer], record.system, record.origin, record.tools)
        sides.append(_encode_chat(conversation, template, tokenizer, cutoff_len, options))
    (chosen, chosen_cut), (rejected, rejected_cut) = sides
    start = _answer_start(chosen)
    prompt = _sample_preview(record.origin, EncodedSample(chosen.input_ids[:start], chosen.labels[:start]), 0,
                             tokenizer, token_view)
    answers = [_answer_preview(sample, cut, tokenizer, token_view) for sample, cut in sides]
    return SamplePreview(
        origin=record.origin, kind="preference", segments=prompt.segments, tokens=prompt.tokens,
        token_count=len(chosen.input_ids) + len(rejected.input_ids),
        trained_count=answers[0].trained_count + answers[1].trained_count,
        truncated=chosen.truncated or rejected.truncated, tokens_cut=chosen_cut + rejected_cut,
        dropped=answers[0].dropped or answers[1].dropped, chosen=answers[0], rejected=answers[1])


def _prompt_preview(
    record: PromptRecord, template: ChatTemplate, tokenizer: FastTokenizer, cutoff_len: int,
    default_system: str | None, token_view: bool,
) -> SamplePreview:
    """The prompt as GRPO / PPO encode it (data.tokenize_pairs.encode_prompt): through the template, ending with the
    assistant header, every token masked, since the answers are sampled during training; and its row."""
    sample = encode_prompt(record, template, tokenizer, cutoff_len, default_system)
    cut = 0
    if sample.truncated:  # a long prompt loses its beginning: count what went
        whole = encode_prompt(record, template, tokenizer, sys.maxsize, default_system)
        cut = len(whole.prompt_ids) - len(sample.prompt_ids)
    masked = EncodedSample(sample.prompt_ids, [IGNORE_INDEX] * len(sample.prompt_ids), sample.truncated)
    preview = _sample_preview(record.origin, masked, cut, tokenizer, token_view)
    # nothing trained is no reason to skip a prompt: GRPO / PPO keep every one
    return preview.model_copy(update={"kind": "prompt", "dropped": False, "item": dict(record.item)})


def _answer_start(sample: EncodedSample) -> int:
    """Where the trained answer begins (everything before it is the prompt); the end when nothing is trained."""
    return next((index for index, label in enumerate(sample.labels) if label != IGNORE_INDEX), len(sample.labels))


def _answer_preview(sample: EncodedSample, cut: int, tokenizer: FastTokenizer, token_view: bool) -> AnswerPreview:
    start = _answer_start(sample)
    answer = _sample_preview("", EncodedSample(sample.input_ids[start:], sample.labels[start:]), 0, tokenizer,
                             token_view)
    return AnswerPreview(segments=answer.segments, token_count=len(sample.input_ids),
                         trained_count=answer.trained_count, truncated=sample.truncated, tokens_cut=cut,
                         dropped=answer.trained_count == 0, tokens=answer.tokens)


def _sample_preview(
    origin: str, sample: EncodedSample, cut: int, tokenizer: FastTokenizer, token_view: bool
) -> SamplePreview:
    flags = [label != IGNORE_INDEX for label in sample.labels]
    pieces = tokenizer.decode_pieces(sample.input_ids)
    trained = sum(flags)
    return SamplePreview(
        origin=origin,
        segments=_segments(pieces, flags),
        token_count=len(sample.input_ids),
        trained_count=trained,
        truncated=sample.truncated,
        tokens_cut=cut,
        dropped=trained == 0,
        tokens=list(zip(pieces, flags, strict=True)) if token_view else None,
    )


def _segments(pieces: list[str], flags: list[bool]) -> list[PreviewSegment]:
    segments: list[PreviewSegment] = []
    for piece, trained in zip(pieces, flags, strict=True):
        if segments and segments[-1].trained == trained:
            segments[-1].text += piece
            segments[-1].tokens += 1
        else:
            segments.append(PreviewSegment(text=piece, trained=trained, tokens=1))
    return segments
