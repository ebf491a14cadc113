"""GET /finetuning/getParameters: the training-parameter reference the docs name, generated from the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tuneforge.api.app import create_app
from tuneforge.schemas import GROUPS, TrainingConfig
from tuneforge.settings import Settings


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=tmp_path / "home", cpu_slots=1), run_scheduler=False)) as light:
        as_local_admin(light)
        yield light


def by_name(answer: dict) -> dict[str, dict]:
    return {item["name"]: item for item in answer["items"]}


def test_every_schema_field_is_listed_by_group_with_its_help(client):
    answer = client.get("/finetuning/getParameters")
    assert answer.status_code == 200
    body = answer.json()
    assert body["groups"] == list(GROUPS)
    assert {item["name"] for item in body["items"]} == set(TrainingConfig.model_fields)
    assert body["total"] == len(TrainingConfig.model_fields) == len(body["items"])
    group_order = [GROUPS.index(item["group"]) for item in body["items"]]
    assert group_order == sorted(group_order)  # listed section by section, as the console's form shows them
    assert all(item["help"]["en"] and item["help"]["zh"] for item in body["items"])


def test_a_parameter_carries_type_default_range_aliases_and_advanced(client):
    items = by_name(client.get("/finetuning/getParameters").json())
    rank = items["lora_rank"]
    assert (rank["type"], rank["default"], rank["range"], rank["constraints"]) == ("int", 8, "≥ 1", {"ge": 1})
    assert rank["group"] == "lora" and "lora_r" in rank["aliases"] and rank["advanced"] is False
    assert "LoRA" in rank["help"]["en"] and "秩" in rank["help"]["zh"]
    assert items["trust_remote_code"]["advanced"] is True and items["trust_remote_code"]["default"] is False
    assert "chatml" in items["template"]["choices"]
    assert items["model_name_or_path"]["required"] is True
    assert set(rank) == {"name", "type", "nullable", "required", "default", "range", "constraints", "choices",
                         "aliases", "group", "help", "recommended", "advanced", "secret"}


def test_openapi_declares_the_reference_as_the_response(client):
    operation = client.get("/openapi.json").json()["paths"]["/finetuning/getParameters"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/ParameterReference")
