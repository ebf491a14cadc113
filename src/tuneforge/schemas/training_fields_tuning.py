"""Field groups of the training configuration: training loop, output, eval, LoRA, freeze, guard."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from tuneforge.schemas import catalog
from tuneforge.schemas.training_fields import ArgsBase, CommaList, arg


def _one_of(value: str, names: tuple[str, ...], what: str) -> str:
    if value not in names:
        raise ValueError(f"unknown {what} '{value}' — choose one of: {', '.join(names)}")
    return value


class TrainingArgs(ArgsBase):
    learning_rate: float = arg(
        5e-5, group="training", gt=0,
        en="Step size of each weight update. Too high: unstable loss; too low: slow progress. Full "
           "fine-tuning needs a lower value than LoRA.",
        zh="学习率：模型参数更新的步长。过高可能导致训练不稳定，过低则收敛缓慢。全参数微调应比 LoRA 更低。",
        rec="1e-5 – 1e-3; start from 1e-4 for LoRA, 1e-5 for full")
    num_train_epochs: float = arg(
        3.0, group="training", gt=0,
        en="Passes over the training data (fractions allowed). Ignored when max_steps is set.",
        zh="训练轮数：完整遍历训练数据的次数（可为小数）；设置 max_steps 时以其为准。",
        rec="1–10; 1–3 is usually enough for fine-tuning")
    max_steps: int = arg(
        -1, group="training", range_text="-1 (off) or ≥ 1", advanced=True,
        en="Stop after this many optimizer steps; -1 = use num_train_epochs.",
        zh="最大训练步数；-1 表示按训练轮数计算。")
    per_device_train_batch_size: int = arg(
        1, group="training", ge=1,
        en="Samples per device in each forward pass. Larger is faster but needs more memory; the effective "
           "batch is this × gradient_accumulation_steps × number of GPUs.",
        zh="批处理大小：每张卡每次输入模型的样本数。越大训练越快但显存占用越多；有效批大小 = 本值 × 梯度"
           "累积 × 卡数。",
        rec="8–64 when memory allows")
    gradient_accumulation_steps: int = arg(
        1, group="training", ge=1,
        en="Forward passes whose gradients are added up before one update: a bigger effective batch without "
           "more memory.",
        zh="梯度累积：累积多少个批次的梯度后再更新一次参数，可在显存有限时模拟更大的批大小。",
        rec="1–8")
    max_grad_norm: float = arg(
        1.0, group="training", ge=0,
        en="Gradients are clipped to this norm to prevent explosions; 0 disables clipping.",
        zh="最大梯度范数（梯度裁剪），防止梯度爆炸；0 表示不裁剪。",
        rec="0.5–1.0")
    lr_scheduler_type: str = arg(
        "cosine", group="training",
        en="How the learning rate changes during training (after warmup): cosine, linear, constant, ...",
        zh="学习率调节器：训练过程中（预热之后）学习率的变化方式，如余弦退火、线性衰减、常数等。",
        rec="cosine, or linear decay after warmup")
    lr_scheduler_kwargs: dict[str, Any] | None = arg(
        None, group="training", advanced=True,
        en="Extra arguments of the scheduler, e.g. {\"min_lr_rate\": 0.1} for cosine_with_min_lr.",
        zh="学习率调节器的额外参数，例如 cosine_with_min_lr 的 {\"min_lr_rate\": 0.1}。")
    warmup_steps: int = arg(
        0, group="training", ge=0,
        en="Steps over which the learning rate rises from 0 to learning_rate; overrides warmup_ratio when > 0.",
        zh="预热步数：学习率从 0 线性升至设定值所用的步数，大于 0 时优先于 warmup_ratio。",
        rec="500–2000 for long runs; short runs: warmup_ratio 0.03–0.1")
    warmup_ratio: float = arg(
        0.0, group="training", ge=0, le=1,
        en="Warmup as a fraction of all training steps.", zh="预热步数占总训练步数的比例。",
        rec="0.03–0.1")
    optim: str = arg(
        "adamw_torch", group="training", advanced=True,
        en="Optimizer. adamw_torch suits almost every run; 8-bit / paged variants save memory and need "
           "bitsandbytes.",
        zh="优化器：adamw_torch 适用于绝大多数情况；8 位 / paged 变体更省显存，需安装 bitsandbytes。",
        rec="adamw_torch")
    weight_decay: float = arg(
        0.0, group="training", ge=0, advanced=True,
        en="L2 penalty on weights (AdamW's decoupled weight decay).", zh="权重衰减系数。", rec="0–0.1")
    adam_beta1: float = arg(0.9, group="training", ge=0, lt=1, advanced=True,
                            en="Adam beta1.", zh="Adam 优化器的 beta1。")
    adam_beta2: float = arg(0.999, group="training", ge=0, lt=1, advanced=True,
                            en="Adam beta2.", zh="Adam 优化器的 beta2。")
    adam_epsilon: float = arg(1e-8, group="training", gt=0, advanced=True,
                              en="Adam epsilon.", zh="Adam 优化器的 epsilon。")
    neftune_noise_alpha: float | None = arg(
        None, group="training", gt=0, advanced=True,
        en="NEFTune: size of the noise added to embeddings during training, which can improve instruction "
           "following. Unset = off.",
        zh="NEFTune 噪声参数：训练时向词嵌入加入的噪声大小，可提升泛化能力；不填表示关闭。",
        rec="5")
    bf16: bool = arg(
        False, group="training",
        en="Train in bfloat16 mixed precision (NVIDIA Ampere / RTX 30xx or newer). Choose at most one of bf16 "
           "and fp16; neither = fp32.",
        zh="计算类型 bf16：使用 bfloat16 混合精度（需 30 系及更新的显卡）。bf16 与 fp16 最多选一个，都不选"
           "即 fp32。",
        rec="bf16 when the GPU supports it, else fp16")
    fp16: bool = arg(
        False, group="training",
        en="Train in float16 mixed precision (older GPUs without bf16).",
        zh="计算类型 fp16：使用 float16 混合精度（不支持 bf16 的较老显卡）。")
    pure_bf16: bool = arg(
        False, group="training", advanced=True,
        en="Keep the weights themselves in bfloat16 (no fp32 master copy): less memory, slightly less precise.",
        zh="纯 bf16 训练：权重本身也以 bf16 保存（无 fp32 副本），更省显存但精度略低。")
    gradient_checkpointing: bool | None = arg(
        None, group="training", advanced=True,
        en="Recompute activations in the backward pass to save memory at ~30% more time. Unset = auto: off "
           "when the run fits in memory, on otherwise.",
        zh="梯度检查点：反向传播时重算激活以节省显存，约多花 30% 时间。不填表示自动：显存足够时关闭。")
    seed: int = arg(42, group="training", advanced=True,
                    en="Random seed (initialisation, shuffling) for reproducible runs.",
                    zh="随机种子，用于复现训练结果。")
    data_seed: int | None = arg(None, group="training", advanced=True,
                                en="Separate seed for data shuffling; unset = seed.",
                                zh="数据打乱使用的随机种子；不填时同 seed。")
    use_cpu: bool = arg(False, group="training", advanced=True,
                        en="Train on the CPU even when a GPU is present (slow; for tests).",
                        zh="即使有 GPU 也在 CPU 上训练（很慢，用于测试）。")
    dataloader_num_workers: int = arg(0, group="training", ge=0, advanced=True,
                                      en="Processes that load batches in the background; 0 = main process.",
                                      zh="后台加载数据批次的进程数；0 表示在主进程中加载。")
    group_by_length: bool = arg(
        False, group="training", advanced=True,
        en="Batch samples of similar length together to waste less compute on padding.",
        zh="将长度相近的样本分到同一批次，减少填充带来的计算浪费。")
    torch_compile: bool = arg(
        False, group="training", advanced=True,
        en="Compile the model with torch.compile before training: faster steps after a slow first one.",
        zh="使用 torch.compile 编译模型：首步较慢，之后每步更快。")
    ddp_find_unused_parameters: bool | None = arg(
        None, group="training", advanced=True,
        en="Multi-device (DDP): search each step for weights that got no gradient. Unset = auto: on only for "
           "mixture-of-experts models, whose unrouted experts get none.",
        zh="多卡 DDP：每步查找未获得梯度的参数。不填表示自动：仅混合专家（MoE）模型开启。")
    upcast_layernorm: bool = arg(
        False, group="training", advanced=True,
        en="Keep the normalisation layers' weights in float32 when training in bf16 / fp16 (steadier training).",
        zh="以 bf16 / fp16 训练时，归一化层权重保持 float32（训练更稳定）。")
    resume_from_checkpoint: str | None = arg(
        None, group="training", advanced=True,
        en="Continue an interrupted run: 'last' (newest checkpoint in output_dir) or a checkpoint path.",
        zh="从检查点恢复训练：last 表示 output_dir 中最新的检查点，或填写检查点路径。")

    @field_validator("max_steps")
    @classmethod
    def _steps_or_off(cls, value: int) -> int:
        if value != -1 and value < 1:
            raise ValueError(f"must be -1 (use num_train_epochs) or ≥ 1, got {value}")
        return value

    @field_validator("lr_scheduler_type")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        return _one_of(value, catalog.LR_SCHEDULERS, "scheduler")

    @field_validator("optim")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        return _one_of(value, catalog.OPTIMIZERS, "optimizer")


class OutputArgs(ArgsBase):
    output_dir: str | None = arg(
        None, group="output",
        en="Where checkpoints and the final model/adapter are written. The platform fills it in for tasks; "
           "`tuneforge train` requires it.",
        zh="输出目录：检查点和最终模型 / 适配器的保存位置。平台任务会自动填写；命令行训练时必填。")
    overwrite_output_dir: bool = arg(
        False, group="output", advanced=True,
        en="Allow writing into a non-empty output_dir.", zh="允许写入非空的输出目录。")
    logging_steps: int = arg(
        5, group="output", ge=1,
        en="Write loss, learning rate and progress every this many steps (trainer_log.jsonl, the loss chart).",
        zh="日志间隔：每隔多少步记录一次损失、学习率和进度（trainer_log.jsonl 与损失曲线）。",
        rec="10–1000 steps depending on run length")
    save_steps: int = arg(
        500, group="output", ge=1,
        en="Save a checkpoint every this many steps (with save_strategy steps).",
        zh="保存间隔：每隔多少步保存一次检查点（save_strategy 为 steps 时）。",
        rec="1000–5000; ~200 on unstable machines")
    save_strategy: Literal["steps", "epoch", "no"] = arg(
        "steps", group="output", advanced=True,
        en="When to save checkpoints: every save_steps, at each epoch end, or never (final model only).",
        zh="检查点保存策略：按 save_steps 步数、每轮结束或不保存（只保存最终模型）。")
    save_total_limit: int | None = arg(
        None, group="output", ge=1,
        en="Keep only the newest N checkpoints (older ones are deleted); unset = keep all.",
        zh="最多保留的检查点个数（更早的会被删除）；不填表示全部保留。",
        rec="5–10 when disk space is tight")
    save_only_model: bool = arg(
        False, group="output", advanced=True,
        en="Checkpoints hold only the weights, not optimizer state: smaller, but cannot resume exactly.",
        zh="检查点只保存模型权重、不保存优化器状态：更小，但无法精确恢复训练。")
    report_to: CommaList = arg(
        ["none"], group="output", advanced=True,
        en="Experiment trackers to send metrics to: none, all, tensorboard, wandb, mlflow, swanlab "
           "(comma-separated for several). tuneforge's own logs are always written.",
        zh="指标上报的实验追踪工具：none、all、tensorboard、wandb、mlflow、swanlab（多个用逗号分隔）。"
           "tuneforge 自身日志总会写入。")
    run_name: str | None = arg(None, group="output", advanced=True,
                               en="Run name shown in experiment trackers.", zh="在实验追踪工具中显示的运行名称。")
    logging_dir: str | None = arg(None, group="output", advanced=True,
                                  en="Folder for tracker logs (TensorBoard); unset = inside output_dir.",
                                  zh="追踪工具（TensorBoard）日志目录；不填则位于输出目录中。")
    plot_loss: bool = arg(
        False, group="output", advanced=True,
        en="Also save a training_loss.png chart in output_dir at the end.",
        zh="训练结束时在输出目录保存损失曲线图 training_loss.png。")
    include_effective_tokens_per_second: bool = arg(
        False, group="output", advanced=True,
        en="Report throughput as effective (non-padding) tokens per second.",
        zh="以有效（非填充）token 每秒统计吞吐量。")
    include_num_input_tokens_seen: bool = arg(
        False, group="output", advanced=True,
        en="Accepted from LLaMA-Factory YAMLs; tuneforge always counts tokens seen.",
        zh="为兼容 LLaMA-Factory 配置而接受；tuneforge 总会统计已训练的 token 数。")

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, value: list[str]) -> list[str]:
        for name in value:
            _one_of(name, catalog.REPORT_TO, "tracker")
        return value or ["none"]


class EvalArgs(ArgsBase):
    per_device_eval_batch_size: int = arg(
        1, group="eval", ge=1, en="Samples per device in each evaluation batch.", zh="评估时每张卡的批大小。")
    eval_strategy: Literal["no", "steps", "epoch"] = arg(
        "no", group="eval",
        en="When to compute the validation loss: never, every eval_steps, or each epoch. Needs val_size or "
           "eval_dataset.",
        zh="验证策略：不验证、每 eval_steps 步或每轮结束时计算验证损失；需设置 val_size 或 eval_dataset。")
    eval_steps: int | None = arg(
        None, group="eval", ge=1,
        en="Evaluate every this many steps (eval_strategy steps); unset = logging_steps.",
        zh="验证间隔步数（eval_strategy 为 steps 时）；不填同 logging_steps。")
    eval_on_start: bool = arg(
        False, group="eval",
        en="Compute the validation loss once before the first step, so the loss before and after training can be "
           "compared.",
        zh="训练开始前先计算一次验证损失，便于对比训练前后的效果。")
    predict_with_generate: bool = arg(
        False, group="eval", advanced=True,
        en="do_predict: generate answers (needed for BLEU / ROUGE). Not supported in training runs: `tuneforge eval` "
           "generates and scores answers.",
        zh="预测时生成回答（计算 BLEU / ROUGE 需要），而不只是计算损失。")
    max_new_tokens: int = arg(
        512, group="eval", ge=1, advanced=True,
        en="GRPO / PPO: longest sampled answer in tokens.", zh="GRPO / PPO：采样回答的最大 token 数。")
    temperature: float = arg(
        0.95, group="eval", gt=0, advanced=True,
        en="GRPO / PPO: sampling temperature of the answers.", zh="GRPO / PPO：采样回答时的温度。")
    top_p: float = arg(
        0.7, group="eval", gt=0, le=1, advanced=True,
        en="Nucleus sampling: keep the smallest set of tokens whose probability adds up to top_p.",
        zh="核采样：只从累计概率达到 top_p 的最小 token 集合中采样。")
    top_k: int = arg(
        50, group="eval", ge=0, advanced=True,
        en="Sample only from the k most likely tokens; 0 = no limit.",
        zh="只从概率最高的 k 个 token 中采样；0 表示不限制。")


class LoraArgs(ArgsBase):
    lora_rank: int = arg(
        8, group="lora", ge=1,
        en="Rank of the LoRA matrices: how many parameters the adapter learns. Higher = more capacity and "
           "memory.",
        zh="LoRA 秩：低秩分解的秩，决定学习的参数量。越大表达能力越强，计算与存储开销也越大。",
        rec="4–16, by model size and task complexity")
    lora_alpha: int | None = arg(
        None, group="lora", ge=1,
        en="LoRA scaling: the adapter's output is multiplied by alpha / rank. Unset = 2 × lora_rank.",
        zh="LoRA 缩放系数：适配器输出乘以 alpha / rank，值越大 LoRA 影响越大。不填为 2 × lora_rank。",
        rec="8–32; 16 is common")
    lora_dropout: float = arg(
        0.0, group="lora", ge=0, lt=1,
        en="Dropout on the LoRA branch to fight overfitting on small datasets.",
        zh="LoRA 随机丢弃：训练时随机丢弃部分 LoRA 输出，防止过拟合。",
        rec="0–0.1; up to 0.3 for small datasets that overfit")
    lora_target: CommaList = arg(
        ["all"], group="lora",
        en="Modules that get LoRA adapters: 'all' (every linear layer) or names such as q_proj,v_proj.",
        zh="LoRA 作用模块：all 表示所有线性层，或填写模块名（如 q_proj,v_proj），逗号分隔。",
        rec="all")
    additional_target: CommaList | None = arg(
        None, group="lora", advanced=True,
        en="Extra modules trained in full next to the adapters (e.g. embed_tokens,lm_head after adding tokens).",
        zh="附加模块：除 LoRA 层外额外全量训练的模块（如新增词表后的 embed_tokens,lm_head）。")
    loraplus_lr_ratio: float | None = arg(
        None, group="lora", gt=0, advanced=True,
        en="LoRA+: the B matrices learn this many times faster than learning_rate. Unset = plain LoRA.",
        zh="LoRA+ 学习率比例：B 矩阵的学习率是基础学习率的倍数；不填即普通 LoRA。",
        rec="16 (LoRA+ paper); start lower if training is unstable")
    loraplus_lr_embedding: float = arg(
        1e-6, group="lora", gt=0, advanced=True,
        en="LoRA+: learning rate of LoRA embedding layers.", zh="LoRA+ 中嵌入层的学习率。")
    use_rslora: bool = arg(
        False, group="lora", advanced=True,
        en="rsLoRA: scale by alpha / √rank, which keeps high ranks stable.",
        zh="rsLoRA：按 alpha / √rank 缩放，使较大的秩也能稳定训练。")
    use_dora: bool = arg(
        False, group="lora", advanced=True,
        en="DoRA: learn magnitude and direction of weights separately; often better, somewhat slower.",
        zh="DoRA：将权重分解为幅度与方向分别学习，效果常更好，速度稍慢。")
    pissa_init: bool = arg(
        False, group="lora", advanced=True,
        en="PiSSA: start the adapter from the weights' principal singular vectors; converges faster.",
        zh="PiSSA：用权重的主奇异向量初始化适配器，收敛更快。")
    pissa_iter: int = arg(
        16, group="lora", ge=-1, advanced=True,
        en="PiSSA: fast-SVD iterations; -1 = exact SVD (slow).",
        zh="PiSSA 快速 SVD 的迭代次数；-1 表示精确 SVD（较慢）。")
    pissa_convert: bool = arg(
        False, group="lora", advanced=True,
        en="PiSSA: save the result as a plain LoRA adapter usable without PiSSA.",
        zh="PiSSA：将结果转换为普通 LoRA 适配器保存。")
    create_new_adapter: bool = arg(
        False, group="lora", advanced=True,
        en="With adapter_name_or_path: train a new adapter on top instead of continuing the loaded one.",
        zh="已加载适配器时，新建一个适配器训练，而不是继续训练已加载的。")


class FreezeArgs(ArgsBase):
    freeze_trainable_layers: int = arg(
        2, group="freeze", range_text="≠ 0",
        en="Freeze fine-tuning: positive n trains the last n layers, negative n the first n.",
        zh="可训练层数：正数 n 表示训练最后 n 层，负数表示训练最前 n 层。",
        rec="2–8")
    freeze_trainable_modules: CommaList = arg(
        ["all"], group="freeze",
        en="Modules trained inside those layers: 'all' or names such as mlp,self_attn.",
        zh="可训练模块：all 表示所选层内全部模块，或填写模块名（逗号分隔）。")
    freeze_extra_modules: CommaList | None = arg(
        None, group="freeze", advanced=True,
        en="Modules outside the hidden layers that are trained too (e.g. embed_tokens).",
        zh="额外模块：隐藏层之外也参与训练的模块（如 embed_tokens）。")
    use_llama_pro: bool = arg(
        False, group="freeze", advanced=True,
        en="LLaMA Pro: train only the expanded blocks. Not supported: refused before training.",
        zh="LLaMA Pro：只训练扩展出的块。不支持：训练前会被拒绝。")

    @field_validator("freeze_trainable_layers")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must not be 0 — use n > 0 to train the last n layers, n < 0 for the first n")
        return value


class GuardArgs(ArgsBase):
    divergence_guard: bool = arg(
        True, group="guard",
        en="tuneforge: stop the run (and keep the last good checkpoint) when the loss diverges or turns NaN.",
        zh="tuneforge 特有：损失发散或变为 NaN 时自动停止训练，并保留最后一个正常检查点。")
    divergence_factor: float = arg(
        3.0, group="guard", gt=1, advanced=True,
        en="A logged loss counts as diverging when it exceeds this factor × its running level.",
        zh="当记录的损失超过其滑动水平的该倍数时视为发散。", rec="2–5")
    divergence_patience: int = arg(
        3, group="guard", ge=1, advanced=True,
        en="Diverging logging steps in a row before the run is stopped.",
        zh="连续多少个日志步发散后停止训练。", rec="3–5")
