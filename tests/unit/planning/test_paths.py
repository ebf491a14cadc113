"""The one confinement: relative paths are looked up in the roots, every link below a folder is checked, outputs
stay off roots and the platform's own folders, and file names are names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.planning.paths import confine, confine_tree, is_plain_name, output_problem


@pytest.fixture()
def roots(tmp_path: Path) -> list[Path]:
    first, second = tmp_path / "home", tmp_path / "data"
    first.mkdir()
    (second / "qa").mkdir(parents=True)
    return [first.resolve(), second.resolve()]


def test_a_relative_path_is_looked_up_in_every_root_not_the_working_directory(roots, tmp_path, monkeypatch):
    (tmp_path / "cwd" / "qa").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd")
    assert confine("qa", roots, "path") == (roots[1] / "qa", None)
    assert confine("new", roots, "path") == (roots[0] / "new", None)  # not found: the first root


def test_a_link_anywhere_below_a_folder_is_named(roots, tmp_path):
    (tmp_path / "secret").write_text("x")
    (roots[1] / "qa" / "deep").mkdir()
    (roots[1] / "qa" / "deep" / "train.jsonl").symlink_to(tmp_path / "secret")
    _, problem = confine_tree(roots[1] / "qa", roots, "path")
    assert problem is not None and "train.jsonl" in problem.message and problem.field == "path"
    (roots[1] / "qa" / "deep" / "train.jsonl").unlink()
    (roots[1] / "qa" / "deep" / "inside.jsonl").symlink_to(roots[0])  # a link that stays inside is fine
    assert confine_tree(roots[1] / "qa", roots, "path") == (roots[1] / "qa", None)


@pytest.mark.parametrize(("where", "refused"), [("home", True), ("home/registry", True), ("home/registry/x", True),
                                                ("home/new", False), ("data/out", False)])
def test_an_output_is_never_a_root_or_a_reserved_folder(roots, where, refused):
    base = roots[0].parent
    reserved = [roots[0] / "registry"]
    assert (output_problem(base / where, roots, reserved, "outputDir") is not None) is refused


@pytest.mark.parametrize(("name", "plain"), [("m.gguf", True), ("../m.gguf", False), ("/etc/passwd", False),
                                             ("a/b.gguf", False), ("..", False), ("", False)])
def test_file_names_are_names(name, plain):
    assert is_plain_name(name) is plain
