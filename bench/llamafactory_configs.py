"""How tuneforge's planner judges a folder of LLaMA-Factory YAML configs: honoured, refused with a reason, or
unknown keys (which should never happen). Models and datasets are not looked up (the configs name hub models and
LLaMA-Factory's own data); the settings are checked against a GPU host with every optional package and against
this host.

    python bench/llamafactory_configs.py PATH_TO/LLaMA-Factory/examples

Prints one table and one JSON line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import yaml

from tuneforge.planning.capabilities import DataFacts, capability_problems
from tuneforge.planning.devices import Device
from tuneforge.planning.host import HostFacts, detect_host
from tuneforge.schemas import ConfigError, ConfigProblem, parse_training_config
from tuneforge.schemas.capabilities import PACKAGES

GPU_HOST = HostFacts([Device(0, "cuda", "NVIDIA H100", 80 * 2**30, 79 * 2**30, (9, 0))], frozenset(PACKAGES))


def judge(raw: dict, host: HostFacts) -> tuple[str, list[ConfigProblem]]:
    try:
        cfg = parse_training_config(raw)
    except ConfigError as exc:
        unknown = [p for p in exc.problems if "unknown key" in p.message]
        return ("unknown" if unknown else "refused"), list(exc.problems)
    problems = capability_problems(cfg, host, DataFacts(model_is_local=False, has_eval_data=bool(cfg.val_size)))
    return ("refused" if problems else "honoured"), problems


def is_training_config(raw: object) -> bool:
    return isinstance(raw, dict) and "model_name_or_path" in raw and "stage" in raw


def main(folder: Path) -> None:
    here = detect_host()
    rows, totals = [], {"gpu": Counter(), "here": Counter()}
    for path in sorted(folder.rglob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not is_training_config(raw):
            continue
        gpu, gpu_problems = judge(raw, GPU_HOST)
        local, _ = judge(raw, here)
        totals["gpu"][gpu] += 1
        totals["here"][local] += 1
        reasons = "; ".join(f"{p.field}: {p.message[:70]}" for p in gpu_problems[:2])
        rows.append((str(path.relative_to(folder)), gpu, local, reasons))
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"{'config':<{width}}  {'GPU host':<9} {'this host':<9} first reasons on the GPU host")
    for name, gpu, local, reasons in rows:
        print(f"{name:<{width}}  {gpu:<9} {local:<9} {reasons}")
    print(json.dumps({"configs": len(rows), "gpu_host": dict(totals["gpu"]), "this_host": dict(totals["here"])}))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
