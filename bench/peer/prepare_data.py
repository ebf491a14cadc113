"""Copy the datasets a peer run names (plus their dataset_info.json) into LLaMA-Factory's data folder.

Usage: prepare_data.py SRC_DIR DEST_DIR NAME[,NAME...]
Fails with a message naming the file and entry when something the run needs is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

# LLaMA-Factory's identity.json ships with these placeholders; fill them so token counts match a real run.
PLACEHOLDERS = {
    "{{name}}": os.environ.get("IDENTITY_NAME", "Forge"),
    "{{author}}": os.environ.get("IDENTITY_AUTHOR", "tuneforge"),
}


def load_info(src: Path) -> dict:
    info_path = src / "dataset_info.json"
    if not info_path.is_file():
        sys.exit(f"{info_path}: missing; set DATA_DIR to a folder with dataset_info.json and the dataset files")
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        sys.exit(f"{info_path}:{err.lineno}: not valid JSON ({err.msg}); fix the file")


def copy_dataset(src: Path, dest: Path, name: str, entry: dict) -> None:
    file_name = entry.get("file_name")
    if not file_name:
        sys.exit(f"{src / 'dataset_info.json'}: entry '{name}' has no file_name; the peer run needs a local file")
    source = src / file_name
    if not source.is_file():
        sys.exit(f"{src / 'dataset_info.json'}: entry '{name}'.file_name points to {source}, which does not exist")
    text = source.read_text(encoding="utf-8")
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    target = dest / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def main(src: Path, dest: Path, names: list[str]) -> None:
    info = load_info(src)
    missing = [name for name in names if name not in info]
    if missing:
        sys.exit(f"{src / 'dataset_info.json'}: no entry for {', '.join(missing)}; add it or change the peer config")
    if dest.exists():
        shutil.rmtree(dest)  # a fresh copy each run, so an edited source dataset is never shadowed
    dest.mkdir(parents=True)
    for name in names:
        copy_dataset(src, dest, name, info[name])
    (dest / "dataset_info.json").write_text(json.dumps({n: info[n] for n in names}, indent=2), encoding="utf-8")
    print(f"[peer] datasets {', '.join(names)} from {src} -> {dest}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: prepare_data.py SRC_DIR DEST_DIR NAME[,NAME...]")
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","))
