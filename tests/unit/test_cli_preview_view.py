"""`tuneforge datasets preview` shows what the console shows: a pair's chosen and rejected answers after the shared
prompt, a KTO sample's label, and the row a prompt's graders read."""

from __future__ import annotations

from rich.console import Console

from tuneforge.cli.dataset_views import preview_view


def _render(sample: dict) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(preview_view({"reference": "toy", "template": "chatml", "model": "m", "cutoffLen": 64,
                                "samples": [sample]}))
    return console.export_text()


def _answer(text: str) -> dict:
    return {"segments": [{"text": text, "trained": True}], "token_count": 9, "trained_count": 3}


def test_a_preference_pair_shows_both_answers() -> None:
    text = _render({"origin": "pairs.jsonl:1", "kind": "preference",
                    "segments": [{"text": "<|im_start|>user\nWho are you?", "trained": False}],
                    "chosen": _answer("I am Forge."), "rejected": _answer("Go away.")})
    assert "Who are you?" in text
    assert text.index("chosen:") < text.index("I am Forge.") < text.index("rejected:") < text.index("Go away.")


def test_kto_label_and_prompt_row_are_shown() -> None:
    kto = _render({"origin": "kto.jsonl:2", "kind": "kto", "label": False, "segments": []})
    assert "undesirable" in kto
    prompt = _render({"origin": "p.jsonl:3", "kind": "prompt", "segments": [{"text": "What is 2 + 2?"}],
                      "item": {"answer": "4", "kind": "addition"}})
    assert 'item.answer: "4"' in prompt and 'item.kind: "addition"' in prompt
