"""Field groups of the training configuration: model, method, data, quantization, acceleration.

Each field carries its help (en / zh), recommended range, group and whether it is advanced in
`json_schema_extra`; the console form, CLI help and docs/parameters.md are generated from it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from tuneforge.schemas import catalog


def arg(
    default: Any,
    *,
    group: str,
    en: str,
    zh: str,
    rec: str = "",
    advanced: bool = False,
    range_text: str = "",
    **constraints: Any,
) -> Any:
    """A pydantic Field with tuneforge's help metadata (range_text: shown where ge/le cannot say it)."""
    extra: dict[str, Any] = {"group": group, "help_en": en, "help_zh": zh, "recommended": rec,
                             "advanced": advanced}
    if range_text:
        extra["range"] = range_text
    return Field(default, json_schema_extra=extra, **constraints)


def split_commas(value: Any) -> Any:
    """LLaMA-Factory writes lists as "a,b"; accept that as well as a real list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(split_commas)]
FloatCommaList = Annotated[list[float], BeforeValidator(split_commas)]


MAX_WHOLE_NUMBER = 2**31 - 1  # no count or length of a run comes near it; beyond it a value is a mistake


class ArgsBase(BaseModel):
    """Shared settings: unknown keys are an error, assignment is re-validated, numbers are finite and bounded."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _bounded_whole_numbers(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WHOLE_NUMBER:
            raise ValueError(f"must be at most {MAX_WHOLE_NUMBER:,} in size, got {value:.3g}")
        return value


class ModelArgs(ArgsBase):
    model_name_or_path: str = arg(
        ..., group="model", min_length=1,
        en="Base model: a Hugging Face hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct) or a local model directory "
           "(prefer an absolute path).",
        zh="基础模型：Hugging Face 模型标识（如 Qwen/Qwen2.5-0.5B-Instruct）或本地模型目录（建议填写绝对路径）。")
    adapter_name_or_path: str | None = arg(
        None, group="model",
        en="Adapter(s) to load on the base model first (comma-separated for several), e.g. to continue "
           "training a LoRA or to predict with one.",
        zh="先加载到基础模型上的已有适配器（多个用逗号分隔），用于继续训练 LoRA 或用其预测。")
    template: str | None = arg(
        None, group="model",
        en="Chat template that turns conversations into text. Unset or 'auto': the tokenizer's own chat "
           "template when it has one, else 'default'. 'tokenizer' forces the tokenizer's own. An instruct "
           "model needs its matching template; when you train an already fine-tuned model again, keep the "
           "template of the first run.",
        zh="提示词模板。不填或 auto：优先使用分词器自带的对话模板，没有则用 default；tokenizer 表示强制使用"
           "分词器自带模板。instruct / chat 模型必须与模板匹配，base 模型影响不大；对微调过的模型再次微调时"
           "要选与第一次相同的模板。",
        rec="auto, or the model family's template")
    default_system: str | None = arg(
        None, group="model",
        en="System prompt used for samples that carry none of their own.",
        zh="默认系统提示词：样本没有自带 system 时使用。")
    trust_remote_code: bool = arg(
        False, group="model", advanced=True,
        en="Allow the model repository's own Python code to run (some model families need it). Only for "
           "models you trust.",
        zh="允许运行模型仓库自带的 Python 代码（部分模型需要）。仅对可信模型开启。")
    rope_scaling: Literal["linear", "dynamic", "yarn", "llama3"] | None = arg(
        None, group="model", advanced=True,
        en="RoPE scaling to stretch the context window beyond what the model was trained on. Leave unset "
           "unless cutoff_len exceeds the model's context length.",
        zh="RoPE 插值方式：用于把上下文长度扩展到模型原生长度之外。截断长度未超过模型上下文长度时不必设置。")
    model_revision: str = arg(
        "main", group="model", advanced=True,
        en="Branch, tag or commit of a hub model to use.",
        zh="使用的 hub 模型版本（分支、标签或提交）。")
    cache_dir: str | None = arg(
        None, group="model", advanced=True,
        en="Where downloaded models are cached (default: the Hugging Face cache).",
        zh="模型下载缓存目录（默认使用 Hugging Face 缓存目录）。")
    hf_hub_token: str | None = arg(
        None, group="model", advanced=True, exclude=True, repr=False,
        en="Token for private or gated hub models. Never written to spec.json, logs or API answers.",
        zh="访问私有或受限 hub 模型的令牌。不会写入 spec.json、日志或 API 响应。")
    gguf_file: str | None = arg(
        None, group="model", advanced=True,
        en="File name of a GGUF model inside model_name_or_path; it is de-quantized on load.",
        zh="model_name_or_path 目录中的 GGUF 模型文件名；加载时会反量化。")

    @field_validator("template", mode="before")
    @classmethod
    def _known_template(cls, value: Any) -> Any:
        if isinstance(value, str):
            name = value.strip()
            if name.lower() in catalog.TEMPLATE_AUTO_VALUES or not name:
                return None
            if name not in catalog.TEMPLATES:
                raise ValueError(f"unknown template '{name}' — choose one of: {', '.join(catalog.TEMPLATES)}, "
                                 "or leave it unset for auto")
            return name
        return value


class MethodArgs(ArgsBase):
    stage: Literal["pt", "sft", "rm", "dpo", "kto", "ppo", "grpo"] = arg(
        "sft", group="method",
        en="Training stage: pt (continued pre-training on plain text), sft (supervised fine-tuning), rm "
           "(reward model), dpo / kto (preference optimisation), ppo (reinforcement learning with a reward "
           "model), grpo (reinforcement learning with graders as rewards).",
        zh="训练阶段：pt 预训练（纯文本继续训练）、sft 指令监督微调、rm 奖励模型、dpo / kto 偏好优化、"
           "ppo（配合奖励模型的强化学习）、grpo（以评分器为奖励的强化学习）。")
    do_train: bool = arg(True, group="method", advanced=True,
                         en="Train the model.", zh="执行训练。")
    do_eval: bool | None = arg(
        None, group="method", advanced=True,
        en="Evaluate on the validation set after training. Unset: yes when there is validation data; false: no "
           "final evaluation; true needs validation data.",
        zh="训练结束后在验证集上评估。不填：有验证数据时评估；false：不做最终评估；true 需要验证数据。")
    do_predict: bool = arg(
        False, group="method", advanced=True,
        en="LLaMA-Factory's predict step. Not supported in training runs: evaluate a published model with "
           "`tuneforge eval`, which generates and scores answers.",
        zh="LLaMA-Factory 的预测步骤。训练任务不支持：请用 `tuneforge eval` 评估已发布的模型（生成并打分）。")
    finetuning_type: Literal["lora", "freeze", "full"] = arg(
        "lora", group="method",
        en="lora: train small low-rank adapters (least memory; with quantization_bit this is QLoRA); freeze: "
           "train only some layers; full: train every weight (most memory, needs a lower learning rate).",
        zh="微调方法：lora 只训练低秩适配器（显存最少，配合量化即 QLoRA）；freeze 只训练部分层；full 全参数"
           "微调（显存最多，学习率需更低）。",
        rec="lora")
    train_on_prompt: bool = arg(
        False, group="method", advanced=True,
        en="Also compute the loss on the prompt, not only on the answer.",
        zh="对提示部分也计算损失（默认只对回答计算）。")
    mask_history: bool = arg(
        False, group="method", advanced=True,
        en="In multi-turn samples, learn only from the last answer.",
        zh="多轮对话样本中只对最后一轮回答计算损失。")
    pref_beta: float = arg(
        0.1, group="method", advanced=True, gt=0,
        en="DPO / KTO: strength of the pull towards the reference model (higher = stay closer).",
        zh="DPO / KTO 的 beta：约束模型贴近参考模型的强度（越大越贴近）。", rec="0.1")
    pref_ftx: float = arg(
        0.0, group="method", advanced=True, ge=0,
        en="DPO: weight of an extra SFT loss on the chosen answers.",
        zh="DPO 中附加在 chosen 回答上的 SFT 损失权重。")
    pref_loss: Literal["sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo"] = arg(
        "sigmoid", group="method", advanced=True,
        en="Preference loss for stage dpo: sigmoid (classic DPO), hinge, ipo, orpo or simpo (orpo and simpo need "
           "no reference model). kto_pair is LLaMA-Factory's old name: train stage kto instead.",
        zh="dpo 阶段使用的偏好损失：sigmoid（标准 DPO）、hinge、ipo、orpo、simpo（orpo 与 simpo 不需要参考模型）。"
           "kto_pair 为 LLaMA-Factory 的旧名称，请改用 kto 阶段。")
    kto_chosen_weight: float = arg(
        1.0, group="method", advanced=True, gt=0,
        en="KTO: loss weight of desirable samples.", zh="KTO 中正样本（desirable）的损失权重。")
    kto_rejected_weight: float = arg(
        1.0, group="method", advanced=True, gt=0,
        en="KTO: loss weight of undesirable samples.", zh="KTO 中负样本（undesirable）的损失权重。")
    reward_model: str | None = arg(
        None, group="method", advanced=True,
        en="PPO / GRPO: the reward model that scores generated answers: the output folder of an rm run (a full "
           "model, or a LoRA adapter on this run's base model).",
        zh="PPO / GRPO 使用的奖励模型：rm 训练的输出目录（完整模型，或基于本次基础模型的 LoRA 适配器）。")


class DataArgs(ArgsBase):
    dataset: CommaList | None = arg(
        None, group="data",
        en="Training dataset name(s) from dataset_dir/dataset_info.json or registered in tuneforge; several "
           "as a list or comma-separated ('identity,alpaca_en_demo').",
        zh="训练数据集名称（dataset_info.json 中或平台中已登记的），多个用列表或逗号分隔。")
    eval_dataset: CommaList | None = arg(
        None, group="data",
        en="Dataset name(s) used for evaluation / prediction instead of a split of the training data.",
        zh="用于评估 / 预测的数据集名称（代替从训练集切分验证集）。")
    dataset_dir: str = arg(
        "data", group="data", advanced=True,
        en="Folder that holds dataset_info.json and the data files it names.",
        zh="存放 dataset_info.json 及数据文件的目录。")
    cutoff_len: int = arg(
        2048, group="data", ge=8,
        en="Maximum tokens per sample after tokenization; longer samples are truncated. Memory grows with it.",
        zh="截断长度：分词后单个样本的最大 token 数，超出部分被截断；显存占用随之增加。",
        rec="1024, 2048 or 4096 (within the model's context length)")
    max_samples: int | None = arg(
        None, group="data", ge=1,
        en="Use at most this many samples of each dataset (for quick trials); unset = all.",
        zh="最大样本数：每个数据集最多使用的样本数，常用于调试；不填表示不限制。",
        rec="unset (no limit); 100–1000 for a trial run")
    val_size: float | int = arg(
        0.0, group="data", range_text="0 ≤ fraction < 1, or a whole count ≥ 1",
        en="Validation split: a fraction of the training data (0.1 = 10%) or a whole number of samples. 0 = "
           "no validation set.",
        zh="验证集比例：从训练数据中切出的比例（0.1 即 10%），或填整数表示样本条数；0 表示不切分验证集。",
        rec="0.1–0.2 when you want eval loss")
    packing: bool | None = arg(
        None, group="data", advanced=True,
        en="Pack several samples into each sequence of cutoff_len tokens. Unset: on for stage pt, off otherwise.",
        zh="将多个样本拼接到同一条 cutoff_len 长度的序列中。不填：pt 阶段开启，其余关闭。")
    neat_packing: bool = arg(
        False, group="data", advanced=True,
        en="Packing without attention between packed samples (each sample sees only itself).",
        zh="无交叉注意力的拼接：拼接后的样本之间互不可见。")
    mix_strategy: Literal["concat", "interleave_under", "interleave_over"] = arg(
        "concat", group="data", advanced=True,
        en="How several datasets are combined: concat (one after the other, then shuffled), interleave_under "
           "(sample by interleave_probs, stop at the smallest), interleave_over (until the largest is used up).",
        zh="多个数据集的混合方式：concat 直接拼接；interleave_under 按 interleave_probs 采样至最小数据集"
           "用完；interleave_over 采样至最大数据集用完。")
    interleave_probs: FloatCommaList | None = arg(
        None, group="data", advanced=True,
        en="Sampling probability of each dataset for interleave strategies, in dataset order; must sum to 1.",
        zh="interleave 混合时各数据集的采样概率，顺序与 dataset 一致，总和须为 1。")
    preprocessing_num_workers: int | None = arg(
        None, group="data", advanced=True, ge=1,
        en="Processes used to tokenize chat data (each encodes a slice; the order is kept).",
        zh="对话数据分词使用的进程数（各处理一段，顺序不变）。")
    overwrite_cache: bool = arg(
        False, group="data", advanced=True,
        en="With tokenized_path: tokenize again and replace the saved copy instead of reading it. Without one, "
           "every run tokenizes afresh anyway.",
        zh="配合 tokenized_path：重新分词并覆盖已保存的副本，而不是读取它。未设置时每次训练本就重新分词。")
    tokenized_path: str | None = arg(
        None, group="data", advanced=True,
        en="Save the tokenized samples here, or read them from here when a saved copy exists (its datasets, "
           "template and cutoff_len are those of the run that saved it).",
        zh="分词后样本的保存 / 读取路径：已有保存的副本时直接读取（其数据集、模板与截断长度以保存时为准）。")
    streaming: bool = arg(
        False, group="data", advanced=True,
        en="Stream the dataset instead of loading it. Not supported (true is refused before training): tuneforge "
           "validates and counts every record first.",
        zh="流式读取数据集。不支持（设为 true 会在训练前被拒绝）：tuneforge 会先校验并统计全部样本。")
    enable_thinking: bool = arg(
        True, group="data", advanced=True,
        en="Reasoning templates: keep the thinking part as the data has it (true, what tuneforge does). false is "
           "refused: choose template qwen3_nothink instead.",
        zh="推理类模板：按数据保留思考过程（true，tuneforge 的做法）。false 会被拒绝：请改用 qwen3_nothink 模板。")
    media_dir: str | None = arg(
        None, group="data", advanced=True,
        en="Folder of images / videos for multimodal data. Not supported: refused before training.",
        zh="多模态数据的图片 / 视频目录。不支持：训练前会被拒绝。")
    image_max_pixels: int | None = arg(
        None, group="data", advanced=True, ge=1,
        en="Multimodal: largest image size in pixels. Not supported: refused before training.",
        zh="多模态：图片最大像素数。不支持：训练前会被拒绝。")
    video_max_pixels: int | None = arg(
        None, group="data", advanced=True, ge=1,
        en="Multimodal: largest video frame size in pixels. Not supported: refused before training.",
        zh="多模态：视频帧最大像素数。不支持：训练前会被拒绝。")

    @field_validator("val_size")
    @classmethod
    def _fraction_or_count(cls, value: float | int) -> float | int:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"must be a fraction 0 ≤ x < 1 or a whole count ≥ 1, got {value}")
            return value
        if not 0 <= value < 1:
            raise ValueError(f"must be a fraction 0 ≤ x < 1 (e.g. 0.1) or a whole count ≥ 1, got {value}")
        return value


class QuantizationArgs(ArgsBase):
    quantization_bit: Literal[4, 8] | None = arg(
        None, group="quantization",
        en="Load the base model quantized to 4 or 8 bits to save memory (with lora this is QLoRA). Unset = "
           "no quantization.",
        zh="量化等级：以 4 位或 8 位加载基础模型以节省显存（配合 lora 即 QLoRA）；不填表示不量化。",
        rec="none; 4 when memory is short")
    quantization_method: Literal["bnb", "hqq", "eetq"] = arg(
        "bnb", group="quantization", advanced=True,
        en="Quantization library: bnb (bitsandbytes, 4/8 bit), hqq (Half-Quadratic Quantization), eetq "
           "(8 bit). 'bitsandbytes' is accepted for bnb.",
        zh="量化方法：bnb（bitsandbytes，4/8 位）、hqq（半二次量化）、eetq（8 位）。也可写 bitsandbytes。")
    quantization_type: Literal["nf4", "fp4"] = arg(
        "nf4", group="quantization", advanced=True,
        en="bnb 4-bit data type.", zh="bnb 4 位量化的数据类型。")
    double_quantization: bool = arg(
        True, group="quantization", advanced=True,
        en="bnb 4-bit: also quantize the quantization constants (saves a little more memory).",
        zh="bnb 4 位：对量化常数再做一次量化（进一步节省少量显存）。")

    @field_validator("quantization_bit", mode="before")
    @classmethod
    def _bit_spellings(cls, value: Any) -> Any:
        # Cloud consoles offer "none", "int4", "int8"; YAML may say "4" or "4bit".
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("", "none", "null"):
                return None
            text = text.removeprefix("int").removesuffix("bit").removesuffix("-")
            return int(text) if text.isdigit() else value
        return value

    @field_validator("quantization_method", mode="before")
    @classmethod
    def _method_synonym(cls, value: Any) -> Any:
        if isinstance(value, str):
            return catalog.QUANTIZATION_METHOD_SYNONYMS.get(value.lower(), value.lower())
        return value


class AccelerationArgs(ArgsBase):
    flash_attn: Literal["auto", "disabled", "sdpa", "fa2"] = arg(
        "auto", group="acceleration",
        en="Attention kernel: auto (best available), sdpa (PyTorch), fa2 (FlashAttention-2, needs the "
           "flash-attn package and a recent NVIDIA GPU), disabled (plain eager attention).",
        zh="注意力实现：auto 自动选择；sdpa 使用 PyTorch 实现；fa2 使用 FlashAttention-2（需安装 flash-attn "
           "且 GPU 支持）；disabled 使用普通实现。",
        rec="auto")
    enable_liger_kernel: bool = arg(
        False, group="acceleration", advanced=True,
        en="Use Liger kernels (fused Triton kernels that cut memory); needs the liger-kernel package.",
        zh="使用 Liger Kernel（融合算子，降低显存），需安装 liger-kernel。")
    use_unsloth: bool = arg(
        False, group="acceleration", advanced=True,
        en="Use Unsloth's patched LoRA training; needs the unsloth package.",
        zh="使用 Unsloth 加速 LoRA 训练，需安装 unsloth。")
    deepspeed: str | None = arg(
        None, group="acceleration", advanced=True,
        en="DeepSpeed ZeRO on GPUs: a preset (z0, z2, z2_offload, z3, z3_offload; LLaMA-Factory's "
           "ds_z3_config.json and the like name the same) or the path of a DeepSpeed JSON config. ZeRO-2 shards "
           "gradients and optimizer state across the GPUs, ZeRO-3 the weights too; _offload keeps them in CPU "
           "memory.",
        zh="GPU 上的 DeepSpeed ZeRO：预设名（z0、z2、z2_offload、z3、z3_offload；LLaMA-Factory 的 ds_z3_config.json "
           "等文件名同义）或 DeepSpeed JSON 配置文件路径。ZeRO-2 在各卡间切分梯度与优化器状态，ZeRO-3 还切分权重；"
           "_offload 将其放在 CPU 内存。")
    fsdp: Literal["full_shard", "shard_grad_op", "full_shard_offload"] | None = arg(
        None, group="acceleration", advanced=True,
        en="PyTorch FSDP2 on GPUs: full_shard shards weights, gradients and optimizer state across the GPUs "
           "(like ZeRO-3), shard_grad_op gradients and optimizer state (like ZeRO-2), full_shard_offload keeps "
           "the shards in CPU memory. Choose it or deepspeed, not both.",
        zh="GPU 上的 PyTorch FSDP2：full_shard 在各卡间切分权重、梯度与优化器状态（类似 ZeRO-3），shard_grad_op "
           "切分梯度与优化器状态（类似 ZeRO-2），full_shard_offload 将分片放在 CPU 内存。与 deepspeed 二选一。")
    ddp_timeout: int = arg(
        1800, group="acceleration", advanced=True, ge=1,
        en="Seconds distributed workers wait for each other before giving up.",
        zh="分布式训练中进程间等待的超时秒数。")
