"""`preprocessing_num_workers`: chat data is encoded in that many processes, with the same samples in the same order."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from tests.fixtures.tiny import build_tokenizer
from tuneforge.data.prepare import _encode_in_processes, _Encoder
from tuneforge.data.records import ChatRecord, Message
from tuneforge.data.templates import fix_tokenizer, get_template

HANG_GUARD_S = 120  # only a broken pool waits this long; a working one passes the barrier at once


@dataclass(frozen=True)
class MeetTheOthers:
    """Each process, on its first record, waits until `expected` processes have each taken a slice: with fewer
    processes than slices one would block forever (the guard fails it), so passing proves they ran side by side."""

    folder: Path
    expected: int

    def __call__(self, record: object) -> int:
        mine = self.folder / str(os.getpid())
        if not mine.exists():
            mine.touch()
            deadline = time.monotonic() + HANG_GUARD_S
            while len(list(self.folder.iterdir())) < self.expected and time.monotonic() < deadline:
                time.sleep(0.01)
        return os.getpid()


def _records(n: int) -> list[ChatRecord]:
    return [ChatRecord(messages=[Message(role="user", content=f"Question {i}?"),
                                 Message(role="assistant", content=f"Answer number {i}.")]) for i in range(n)]


def test_slices_are_encoded_in_separate_processes(tmp_path):
    pids = _encode_in_processes(MeetTheOthers(tmp_path, 2), _records(8), 2)  # type: ignore[arg-type]
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
