"""Writes arithmetic_prompts.jsonl: 200 prompts with answers a grader can check, for the GRPO example.

Each line is a one-turn conversation (a user message, no answer) plus the reference `answer` the graders read as
`{{item.answer}}`, and its `kind`: addition, subtraction, word count or uppercasing a word. The same seed gives the
same file, so the shipped copy can be checked against this script:

    python examples/data/make_arithmetic_prompts.py            # rewrite examples/data/arithmetic_prompts.jsonl
    python examples/data/make_arithmetic_prompts.py --check    # exit 1 if the shipped file differs
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SEED = 20240611
COUNTS = {"addition": 60, "subtraction": 50, "word_count": 45, "uppercase": 45}
OUTPUT = Path(__file__).with_name("arithmetic_prompts.jsonl")
WORDS = ("apple", "river", "garden", "window", "pencil", "cloud", "orange", "bridge", "candle", "forest", "market",
         "silver", "tiger", "rocket", "summer", "violin", "yellow", "planet", "island", "butter", "mirror", "ladder",
         "coffee", "basket", "dragon", "winter", "jacket", "monkey", "pillow", "rabbit", "tomato", "castle", "lemon",
         "anchor", "feather", "harbor", "meadow", "pepper", "saddle", "tunnel")


def addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    return f"What is {a} + {b}? Answer with the number only.", str(a + b)


def subtraction(rng: random.Random) -> tuple[str, str]:
    a, b = sorted((rng.randint(2, 99), rng.randint(2, 99)), reverse=True)
    return f"What is {a} - {b}? Answer with the number only.", str(a - b)


def word_count(rng: random.Random) -> tuple[str, str]:
    words = rng.sample(WORDS, rng.randint(2, 8))
    return (f'How many words are in this list: "{" ".join(words)}"? Answer with the number only.',
            str(len(words)))


def uppercase(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f'Write the word "{word}" in uppercase letters. Answer with the word only.', word.upper()


MAKERS = {"addition": addition, "subtraction": subtraction, "word_count": word_count, "uppercase": uppercase}


def rows(seed: int = SEED) -> list[dict[str, object]]:
    """The prompts, the kinds interleaved in a fixed shuffled order."""
    rng = random.Random(seed)
    kinds = [kind for kind, count in COUNTS.items() for _ in range(count)]
    rng.shuffle(kinds)
    made = []
    for kind in kinds:
        prompt, answer = MAKERS[kind](rng)
        made.append({"messages": [{"role": "user", "content": prompt}], "answer": answer, "kind": kind})
    return made


def render(seed: int = SEED) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows(seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help="where to write (default: next to this script)")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'differs from what this script writes'}")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {sum(COUNTS.values())} prompts to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
