"""`preprocessing_num_workers`: chat data is encoded in that many processes, with the same samples in the same order."""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import SimpleNamespace

from tests.fixtures.tiny import build_tokenizer
from tuneforge.data.prepare import _encode_in_processes, _Encoder
from tuneforge.data.records import ChatRecord, Message
from tuneforge.data.templates import fix_tokenizer, get_template


@dataclass(frozen=True)
class WhichProcess:
    def __call__(self, record: object) -> int:
        return os.getpid()


def _records(n: int) -> list[ChatRecord]:
    return [ChatRecord(messages=[Message(role="user", content=f"Question {i}?"),
                                 Message(role="assistant", content=f"Answer number {i}.")]) for i in range(n)]


def test_slices_are_encoded_in_separate_processes():
    pids = _encode_in_processes(WhichProcess(), _records(8), 2)  # type: ignore[arg-type]
    assert len(pids) == 8 and os.getpid() not in pids and len(set(pids)) == 2


def test_several_workers_give_the_same_samples_in_the_same_order(tmp_path):
    tokenizer = build_tokenizer(tmp_path)
    template = get_template("chatml", tokenizer)
    fix_tokenizer(tokenizer, template)

    def encode(workers: int) -> list[tuple[list[int], list[int]]]:
        cfg = SimpleNamespace(cutoff_len=64, preprocessing_num_workers=workers, seed=1)
        samples, _ = _Encoder(cfg, tokenizer, template, "sft", lambda *_: None).encode(_records(9), "train")
        return [(s.input_ids, s.labels) for s in samples]

    assert encode(3) == encode(1)
