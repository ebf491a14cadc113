"""The child side of bench/gpu_check.py: each command runs in a fresh process, so peak memory is per row.

    python bench/gpu_check_rows.py build SPEC.json      # tokenizer + random-weight models, saved by path
    python bench/gpu_check_rows.py worker SPEC.json     # tuneforge's worker (python -m tuneforge.engine.run RUN_DIR)
    python bench/gpu_check_rows.py baseline SPEC.json   # plain Trainer + peft with LLaMA-Factory's defaults

Every command writes its result JSON to the path in the spec, and rewrites it every couple of seconds while it runs:
a row killed at its time cap still reports the peak memory it had reached.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<pad>"]
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
# LLaMA-Factory's lora_target "all": every linear layer of the blocks, not the LM head.
LLAMA_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SAMPLE_EVERY_S = 2.0


def corpus_words(count: int = 512, seed: int = 0) -> list[str]:
    """Pseudo-words of 2–3 syllables: the tokenizer below learns each as one token, so words ≈ tokens."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choices(SYLLABLES, k=3 if rng.random() < 0.3 else 2)))
    return sorted(words)


def throughput(marks: list[tuple[int, float, int]], warmup_steps: int) -> dict[str, Any] | None:
    """Tokens per second between the end of step `warmup_steps` (or the first mark after it) and the last mark.

    marks: (step, seconds, cumulative non-pad tokens) at step ends. None when fewer than two marks remain.
    """
    kept = [m for m in marks if m[0] >= warmup_steps]
    if len(kept) < 2 or kept[-1][1] <= kept[0][1]:
        return None
    (first_step, first_time, first_tokens), (last_step, last_time, last_tokens) = kept[0], kept[-1]
    return {"tokens_per_s": (last_tokens - first_tokens) / (last_time - first_time),
            "measured_steps": last_step - first_step, "measured_tokens": last_tokens - first_tokens,
            "steps": last_step}


# --- measurement ---------------------------------------------------------------------------------------------

class Meter:
    """Peak memory of this process, rewritten to `path` (atomically) every few seconds and at the end.

    CUDA: the caching allocator's peaks plus the CUDA context (device memory in use once the context exists,
    before anything is allocated), so the figure compares with what nvidia-smi shows. CPU: the peak resident
    set (VmHWM: this process's own high-water mark, which a fork from a large parent does not inflate).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.extra: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.device = self._device_facts()

    @staticmethod
    def _device_facts() -> dict[str, Any]:
        import torch

        if not torch.cuda.is_available():
            return {"kind": "cpu"}
        free, total = torch.cuda.mem_get_info()  # creates the context: what remains used is the context itself
        return {"kind": "cuda", "name": torch.cuda.get_device_name(), "total_memory": total,
                "free_memory": free, "context_bytes": total - free}

    def snapshot(self) -> dict[str, Any]:
        if self.device["kind"] == "cuda":
            import torch

            return {"peak_allocated": torch.cuda.max_memory_allocated(),
                    "peak_reserved": torch.cuda.max_memory_reserved()}
        return {"peak_rss": _vm_hwm()}

    def update(self, **fields: Any) -> None:
        with self.lock:
            self.extra.update(fields)
        self.write()

    def write(self) -> None:
        with self.lock:
            payload = {"device": self.device, **self.snapshot(), **self.extra}
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(payload), encoding="utf-8")
            os.replace(partial, self.path)

    def run(self, body: Callable[[Meter], None]) -> int:
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(SAMPLE_EVERY_S):
                self.write()

        threading.Thread(target=sample, daemon=True).start()
        code = 0
        try:
            body(self)
        except Exception as exc:  # the orchestrator shows the reason in its table and goes on
            traceback.print_exc()
            self.extra["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            code = 1
        stop.set()
        self.write()
        return code


def _vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- build ---------------------------------------------------------------------------------------------------

def build(spec: dict[str, Any], meter: Meter) -> None:
    """The tokenizer, then each model with random weights, saved next to it; on CUDA the weights are made there."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    on_gpu = meter.device["kind"] == "cuda"
    if spec["needs_cuda"] and not on_gpu:
        raise RuntimeError("no CUDA device: run with --smoke on a CPU host")
    tokenizer = build_tokenizer(corpus_words())
    dtype = torch.bfloat16 if on_gpu else torch.float32
    made = {}
    for name, model in spec["models"].items():
        started = time.monotonic()
        settings = {**model["config"], "vocab_size": model["config"].get("vocab_size") or len(tokenizer)}
        config = LlamaConfig(**settings, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # initialise in the stored dtype: an 8B model in fp32 is 32 GB more
        try:
            with torch.device("cuda" if on_gpu else "cpu"):
                llama = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(previous)
        llama.save_pretrained(model["dir"])
        tokenizer.save_pretrained(model["dir"])
        made[name] = {"parameters": llama.num_parameters(), "seconds": round(time.monotonic() - started, 1)}
        del llama
        if on_gpu:
            torch.cuda.empty_cache()
    meter.update(models=made, tokenizer_size=len(tokenizer))


def build_tokenizer(words: list[str], vocab_size: int = 2048) -> Any:
    """A byte-level BPE tokenizer trained on the pseudo-words (no downloads), ChatML-style specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    rng = random.Random(1)
    corpus = [" ".join(rng.sample(words, len(words))) for _ in range(8)] + ["user assistant system\n"] * 8
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>",
                                   pad_token="<pad>", additional_special_tokens=["<|im_start|>", "</s>"])


# --- worker --------------------------------------------------------------------------------------------------

def worker(spec: dict[str, Any], meter: Meter) -> None:
    """tuneforge's worker entry point, in this process so that the meter sees its memory."""
    from tuneforge.engine.run import main

    meter.update(exit_code=main([spec["run_dir"]]))


# --- baseline ------------------------------------------------------------------------------------------------

def baseline(spec: dict[str, Any], meter: Meter) -> None:
    """A plain Trainer + peft run as LLaMA-Factory sets it up by default: batches padded to the longest sample
    (DataCollatorForSeq2Seq, multiple of 8), reentrant gradient checkpointing, SDPA, the model's own loss on
    full-width logits, LoRA adapters in fp32, full fine-tuning on fp32 master weights. Same tokenised samples
    as the worker (tuneforge's data layer with the same template), same batch size, steps and seed."""
    from transformers import DataCollatorForSeq2Seq, TrainingArguments, set_seed

    from tuneforge.schemas import parse_training_config

    cfg = parse_training_config(spec["config"])
    set_seed(cfg.seed)
    on_gpu = meter.device["kind"] == "cuda"
    bf16 = cfg.bf16 and on_gpu
    tokenizer, features = _baseline_data(cfg)
    args = TrainingArguments(
        output_dir=spec["work_dir"], per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps, lr_scheduler_type=cfg.lr_scheduler_type, logging_steps=cfg.logging_steps,
        save_strategy="no", bf16=bf16, seed=cfg.seed, report_to="none", remove_unused_columns=False,
        disable_tqdm=True, use_cpu=not on_gpu,
    )
    counting_trainer, step_clock = baseline_classes()
    clock = step_clock(meter, spec["warmup_steps"], on_gpu)
    trainer = counting_trainer(
        model=_baseline_model(cfg, bf16), args=args, train_dataset=features, clock=clock,
        data_collator=DataCollatorForSeq2Seq(tokenizer, pad_to_multiple_of=8, label_pad_token_id=-100),
    )
    trainer.add_callback(clock)
    trainer.train()


def _baseline_data(cfg: Any) -> tuple[Any, list[dict[str, list[int]]]]:
    from transformers import AutoTokenizer

    from tuneforge.data.prepare import prepare_datasets
    from tuneforge.data.templates import fix_tokenizer, get_template

    tokenizer = AutoTokenizer.from_pretrained(cfg.model_name_or_path)
    template = get_template(cfg.template, tokenizer)
    fix_tokenizer(tokenizer, template)
    samples = prepare_datasets(cfg, tokenizer, template).train
    return tokenizer, [{"input_ids": s.input_ids, "attention_mask": [1] * len(s.input_ids), "labels": s.labels}
                       for s in samples]


def _baseline_model(cfg: Any, bf16: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    lora = cfg.finetuning_type == "lora"
    model = AutoModelForCausalLM.from_pretrained(cfg.model_name_or_path, attn_implementation="sdpa",
                                                 dtype=torch.bfloat16 if bf16 and lora else torch.float32)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model.enable_input_require_grads()  # reentrant checkpointing passes gradients only to inputs that want them
    if not lora:
        return model
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                            lora_dropout=cfg.lora_dropout, target_modules=LLAMA_LINEARS))


def baseline_classes() -> tuple[type, type]:
    """The stock Trainer counting the non-pad tokens it trains on (no change to what it computes), and a callback
    that notes (step, time, tokens) at each step end. Made on demand: transformers is imported only in a row."""
    from transformers import Trainer, TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self, meter: Meter, warmup_steps: int, on_gpu: bool) -> None:
            self.meter = meter
            self.warmup_steps = warmup_steps
            self.on_gpu = on_gpu
            self.tokens: Any = 0  # a device tensor once counting starts: no sync per micro-batch
            self.marks: list[tuple[int, float, int]] = []

        def count(self, attention_mask: Any) -> None:
            self.tokens = self.tokens + attention_mask.sum()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.on_gpu:  # the step's kernels finish before its time is read
                import torch

                torch.cuda.synchronize()
            self.marks.append((state.global_step, time.perf_counter(), int(self.tokens)))
            self.meter.update(throughput=throughput(self.marks, self.warmup_steps), steps=state.global_step)

    class CountingTrainer(Trainer):
        def __init__(self, *args: Any, clock: StepClock, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.clock = clock

        def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            self.clock.count(inputs["attention_mask"])
            return super().training_step(model, inputs, num_items_in_batch)

    return CountingTrainer, StepClock


COMMANDS: dict[str, Callable[[dict[str, Any], Meter], None]] = {"build": build, "worker": worker,
                                                                 "baseline": baseline}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMMANDS:
        print(f"usage: gpu_check_rows.py {{{'|'.join(COMMANDS)}}} SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    meter = Meter(Path(spec["result"]))
    return meter.run(lambda m: COMMANDS[argv[0]](spec, m))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
