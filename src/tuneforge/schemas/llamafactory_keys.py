"""LLaMA-Factory options that tuneforge does not support, each with the reason.

A user bringing a LLaMA-Factory YAML gets "not supported: why" for these, never "unknown key". The list covers the
documented hparams (model, data, finetuning, generating, evaluation and training arguments, the transformers
trainer arguments it inherits, and its Megatron / KTransformers extras); options tuneforge honours are fields of
TrainingConfig or ALIASES instead.
"""

from __future__ import annotations

_REASONS: dict[str, tuple[str, ...]] = {
    ("tokenizer and vocabulary changes (tuneforge trains with the model's own fast tokenizer and grows the "
     "embeddings only to fit it)"): (
        "add_special_tokens", "add_tokens", "new_special_tokens", "resize_vocab", "split_special_tokens",
        "use_fast_tokenizer"
    ),
    'generation and prediction settings (training runs do not generate; `tuneforge eval` does)': (
        "batch_eval_metrics", "bf16_full_eval", "compute_accuracy", "do_sample", "eval_accumulation_steps",
        "eval_delay", "eval_do_concat_batches", "eval_num_beams", "eval_on_each_dataset", "fp16_full_eval",
        "generation_config", "generation_max_length", "generation_num_beams", "include_for_metrics", "infer_dtype",
        "length_penalty", "num_beams", "prediction_loss_only", "repetition_penalty", "skip_special_tokens",
        "sortish_sampler", "use_kv_cache"
    ),
    'preference options beyond the reference model being the starting model': (
        "dpo_label_smoothing", "pref_bco_weight", "ref_model", "ref_model_adapters", "ref_model_quantization_bit",
        "reward_model_adapters", "reward_model_quantization_bit"
    ),
    'profiling (tuneforge reports tokens/s, memory and ETA itself)': (
        "enable_torch_profiler", "print_param_status", "profiler_active_steps", "profiler_output_dir",
        "profiler_profile_memory", "profiler_record_shapes", "profiler_repeat", "profiler_wait_steps",
        "profiler_warmup_steps", "profiler_with_stack", "skip_memory_metrics"
    ),
    "a trainer or loader detail that tuneforge's worker sets itself": (
        "activation_checkpointing_kwargs", "adapter_folder", "auto_find_batch_size",
        "average_tokens_across_devices", "buffer_size", "data_shared_file_system", "dataloader_drop_last",
        "dataloader_in_order", "dataloader_multiprocessing_context", "dataloader_persistent_workers",
        "dataloader_pin_memory", "dataloader_prefetch_factor", "disable_shuffling", "disable_tqdm",
        "early_stopping_steps", "full_determinism", "gradient_checkpointing_kwargs", "greater_is_better",
        "ignore_data_skip", "ignore_pad_token_for_loss", "label_names", "label_smoothing_factor",
        "length_column_name", "liger_kernel_config", "load_best_model_at_end", "log_level", "logging_first_step",
        "logging_nan_inf_filter", "logging_strategy", "low_cpu_mem_usage", "metric_for_best_model",
        "offload_folder", "optim_args", "preprocessing_batch_size", "preserve_thinking", "quantization_device_map",
        "remove_unused_columns", "restore_callback_states_from_checkpoint", "tf32", "torch_compile_backend",
        "torch_compile_mode", "torch_empty_cache_steps", "train_from_scratch", "train_sampling_strategy",
        "upcast_lmhead_output", "use_reentrant_gc"
    ),
    'description-based init of new token embeddings': (
        "init_special_tokens", "new_special_tokens_config"
    ),
    'LongLoRA S^2-attn monkey patch': (
        "shift_attn",
    ),
    'mixture-of-depths conversion': (
        "mixture_of_depths",
    ),
    'unsloth gradient-checkpointing patch': (
        "use_unsloth_gc",
    ),
    'MoE router aux loss': (
        "moe_aux_loss_coef",
    ),
    'vLLM/SGLang inference engines': (
        "infer_backend",
    ),
    "LLaMA-Factory's v1 kernel plugins": (
        "use_v1_kernels",
    ),
    'ModelScope hub': (
        "ms_hub_token",
    ),
    'Modelers (OpenMind) hub': (
        "om_hub_token",
    ),
    'multimodal (image / video / audio) models': (
        "audio_sampling_rate", "crop_to_patches", "freeze_language_model", "freeze_multi_modal_projector",
        "freeze_vision_tower", "image_do_pan_and_scan", "image_min_pixels", "use_audio_in_video", "video_fps",
        "video_maxlen", "video_min_pixels"
    ),
    'export step, not training': (
        "export_device", "export_dir", "export_legacy_format", "export_size"
    ),
    ('GPTQ export quantization (an export setting: export the model with quantization_bit, '
     'quantization_dataset, quantization_nsamples and quantization_maxlen)'): (
        "export_quantization_bit", "export_quantization_dataset", "export_quantization_maxlen",
        "export_quantization_nsamples"
    ),
    'hub upload at export': (
        "export_hub_model_id",
    ),
    'KTransformers CPU/GPU MoE backend': (
        "kt_cpu_activation", "kt_expert_checkpoint_path", "kt_lora_expert_intermediate_size", "kt_lora_expert_num",
        "kt_non_expert_weight_path", "kt_use_lora_experts", "kt_weight_path", "use_kt"
    ),
    'vLLM inference engine': (
        "vllm_config", "vllm_enforce_eager", "vllm_gpu_util", "vllm_max_lora_rank", "vllm_maxlen"
    ),
    'SGLang inference engine': (
        "sglang_config", "sglang_lora_backend", "sglang_maxlen", "sglang_mem_fraction", "sglang_tp_size"
    ),
    'function-calling data formats': (
        "tool_format",
    ),
    'OFT adapters': (
        "module_dropout", "oft_block_size", "oft_rank", "oft_target"
    ),
    ("PPO details tuneforge's PPO fixes: one optimisation step per rollout, advantages whitened, raw scores, a "
     "fixed KL coefficient (kl_coef)"): (
        "ppo_buffer_size", "ppo_epochs", "ppo_score_norm", "ppo_target", "ppo_whiten_rewards"
    ),
    'PPO reward via API / shared-LoRA reward heads': (
        "reward_model_type",
    ),
    'LD-DPO length-desensitised loss': (
        "ld_alpha",
    ),
    'GaLore optimizer': (
        "galore_layerwise", "galore_proj_type", "galore_rank", "galore_scale", "galore_target",
        "galore_update_interval", "use_galore"
    ),
    'APOLLO optimizer': (
        "apollo_layerwise", "apollo_proj", "apollo_proj_type", "apollo_rank", "apollo_scale", "apollo_scale_front",
        "apollo_scale_type", "apollo_target", "apollo_update_interval", "use_apollo"
    ),
    'BAdam optimizer': (
        "badam_mask_mode", "badam_mode", "badam_start_block", "badam_switch_interval", "badam_switch_mode",
        "badam_update_ratio", "badam_verbose", "use_badam"
    ),
    'SwanLab tracker': (
        "swanlab_api_key", "swanlab_lark_secret", "swanlab_lark_webhook_url", "swanlab_logdir", "swanlab_mode",
        "swanlab_project", "swanlab_run_name", "swanlab_workspace", "use_swanlab"
    ),
    'Adam-mini optimizer': (
        "use_adam_mini",
    ),
    'Megatron-Core adapter runs': (
        "use_mca",
    ),
    'Megatron Bridge backend': (
        "use_megatron_bridge",
    ),
    'HyperParallel backend': (
        "hyper_parallel_args", "hyper_parallel_cp_size", "use_hyper_parallel"
    ),
    'Muon optimizer': (
        "use_muon",
    ),
    'DFT loss': (
        "use_dft_loss",
    ),
    'ASFT loss': (
        "asft_alpha", "use_asft_loss"
    ),
    'EAFT loss': (
        "eaft_alpha", "use_eaft_loss"
    ),
    'MMLU/C-Eval benchmark runs': (
        "download_mode", "lang", "n_shot", "save_dir", "task", "task_dir"
    ),
    ("Ray's own result storage (a Ray run writes to its run directory, which must be on storage every node "
     "sees)"): (
        "ray_run_name", "ray_storage_filesystem", "ray_storage_path"
    ),
    'multi-node launch': (
        "master_addr", "master_port"
    ),
    'FP8 training': (
        "fp8", "fp8_backend", "fp8_enable_fsdp_float8_all_gather"
    ),
    'per-module CUDA-event profiling': (
        "profile_modules",
    ),
    'GaLore/APOLLO optimizer': (
        "optim_target_modules",
    ),
    'training runs with KV cache off; only matters for generation': (
        "use_cache",
    ),
    'multi-node / DDP tuning': (
        "ddp_backend", "ddp_broadcast_buffers", "ddp_bucket_cap_mb", "ddp_static_graph", "local_rank",
        "log_level_replica", "log_on_each_node", "save_on_each_node"
    ),
    'Trackio tracker': (
        "project", "trackio_bucket_id", "trackio_space_id", "trackio_static_space_id"
    ),
    'multi-GPU eval gather detail': (
        "eval_use_gather_object",
    ),
    'preemptible-job SIGTERM checkpointing': (
        "enable_jit_checkpoint",
    ),
    'hub upload': (
        "hub_always_push", "hub_model_id", "hub_private_repo", "hub_revision", "hub_strategy", "push_to_hub"
    ),
    'Accelerate internals / multi-GPU parallelism': (
        "accelerator_config", "parallelism_config"
    ),
    'FSDP multi-GPU sharding': (
        "fsdp", "fsdp_config", "fsdp_transformer_layer_cls_to_wrap"
    ),
    'transformers debug modes': (
        "debug",
    ),
    'Megatron parallel runs': (
        "account_for_embedding_in_pipeline_split", "account_for_loss_in_pipeline_split", "apply_rope_fusion",
        "bias_activation_fusion", "calculate_per_token_loss", "context_parallel_size", "cross_entropy_loss_fusion",
        "expert_model_parallel_size", "export_hf_on_finish", "extra_config", "masked_softmax_fusion",
        "megatron_pretrained_checkpoint", "mixed_precision", "moe_grouped_gemm", "moe_token_dispatcher_type",
        "overlap_grad_reduce", "overlap_param_gather", "pipeline_model_parallel_size", "recompute_granularity",
        "recompute_method", "recompute_num_layers", "sequence_parallel", "tensor_model_parallel_size",
        "use_distributed_optimizer", "use_packed_sequences", "virtual_pipeline_model_parallel_size"
    ),
    'KTransformers backend': (
        "kt_config",
    ),
}

NOT_SUPPORTED: dict[str, str] = {key: reason for reason, keys in _REASONS.items() for key in keys}
