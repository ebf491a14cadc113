"""Before launch: `auto` values are resolved and stored, the estimate is shown, and a task that cannot fit its
devices is refused with the numbers."""

from __future__ import annotations

import json

from tests.integration.service.conftest import task_body


def test_auto_values_are_resolved_stored_and_shown(make_client, tiny_model_dir, dataset_dir):
    client = make_client(run_scheduler=False)
    body = task_body("auto-run", tiny_model_dir, dataset_dir, num_train_epochs="auto", learning_rate="auto",
                     per_device_train_batch_size="auto", gradient_accumulation_steps="auto")
    estimate = client.post("/finetuning/estimateTask", json=body)
    assert estimate.status_code == 200, estimate.text
    assert client.get("/finetuning/getTaskList").json()["total"] == 0  # estimating creates nothing
    created = client.post("/finetuning/createTask", json=body)
    assert created.status_code == 201, created.text
    task = created.json()
    chosen = {choice["field"]: choice for choice in task["autoValues"]}
    assert set(chosen) == {"num_train_epochs", "learning_rate", "per_device_train_batch_size",
                           "gradient_accumulation_steps"}
    assert task["trainingArgs"]["learning_rate"] == chosen["learning_rate"]["value"] == 1e-4  # LoRA (seed 002)
    assert all(isinstance(task["trainingArgs"][f], int | float) and chosen[f]["reason"] for f in chosen)
    assert task["estimate"]["fits"] and task["estimate"]["memory"]["total"] > 0
    assert task["estimate"]["total_steps"] == 8, task["estimate"]  # max_steps wins


def test_a_task_too_big_for_its_device_is_refused_with_the_numbers(make_client, dataset_dir, tmp_path):
    """A 7B Llama config and an empty shard index (no weights are read: the refusal comes before anything loads),
    trained in full on a CPU slot."""
    model = tmp_path / "llama-7b-config-only"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
        "max_position_embeddings": 4096, "tie_word_embeddings": False, "torch_dtype": "float16"}))
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {}}))
    client = make_client(run_scheduler=False)
    response = client.post("/finetuning/createTask", json=task_body("too-big", model, dataset_dir,
                                                                    finetuning_type="full"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "does_not_fit" and "GiB" in error["message"]
    numbers = error["details"][0]
    assert numbers["memory"]["total"] > numbers["device_memory"] > 0 and not numbers["fits"]
    assert client.get("/finetuning/getTaskList").json()["total"] == 0
