"""User paths are confined to the configured roots: no '../../etc', no symlink escape — for the path named and for
every file read below it — and outputs never land on a root or on the platform's own folders."""

from __future__ import annotations

import os
from pathlib import Path

from tuneforge.schemas import ConfigProblem


def confine(
    value: str | Path, roots: list[Path], field: str, base: Path | None = None
) -> tuple[Path | None, ConfigProblem | None]:
    """The resolved path when it lies inside one of `roots`, else the problem to report for `field`. A relative
    path starts at `base`, else at the first root that holds it (else the first root): never the working
    directory, which is the server's and not the user's."""
    raw = str(value)
    if "\x00" in raw:
        return None, ConfigProblem(field, "contains a NUL character")
    if ".." in Path(raw).parts:
        return None, ConfigProblem(field, f"{raw!r} contains '..'; give a path without it, inside the allowed folders "
                                          f"({', '.join(str(r) for r in roots)})")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base / path) if base is not None else _in_roots(path, roots)
    resolved = path.resolve()  # follows symlinks: a link out of a root is outside
    if is_inside(resolved, roots):
        return resolved, None
    allowed = ", ".join(str(r) for r in roots)
    return None, ConfigProblem(field, f"{raw!r} resolves to {resolved}, outside the allowed folders ({allowed}); "
                                      "use a path inside them or add a folder to TUNEFORGE_ALLOWED_ROOTS")


def confine_tree(
    value: str | Path, roots: list[Path], field: str, base: Path | None = None
) -> tuple[Path | None, ConfigProblem | None]:
    """`confine`, and then every file and folder below the path (what a reader would open) must resolve inside the
    roots too: an allowed folder holding a link to /etc/passwd is refused, naming the link."""
    path, problem = confine(value, roots, field, base)
    if problem or path is None:
        return path, problem
    return path, escape_problem(path, roots, field)


def escape_problem(path: Path, roots: list[Path], field: str) -> ConfigProblem | None:
    """The first entry below `path` (a file or a folder) that is a link leading out of the roots, as a problem."""
    if not path.is_dir():
        return None
    for folder, dirs, files in os.walk(path):  # links to folders are listed, not followed
        for name in sorted([*dirs, *files]):
            entry = Path(folder) / name
            if entry.is_symlink() and not is_inside(entry, roots):
                return ConfigProblem(field, f"{entry} links to {entry.resolve()}, outside the allowed folders; copy "
                                            "the file itself into the folder instead of linking to it")
    return None


def is_inside(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


def output_problem(path: Path, roots: list[Path], reserved: list[Path], field: str) -> ConfigProblem | None:
    """An output folder can be emptied or overwritten later: it may be neither an allowed root itself nor inside
    (or above) one of the platform's own folders. `path` is resolved (`confine`'s result)."""
    if path in roots:
        return ConfigProblem(field, f"{path} is an allowed folder itself; give a new folder inside it")
    for own in reserved:
        if path == own or path.is_relative_to(own) or own.is_relative_to(path):
            return ConfigProblem(field, f"{path} is or holds the platform's own folder {own}; give a folder of its "
                                        "own")
    return None


def is_hub_id(value: str, roots: list[Path]) -> bool:
    """`owner/name` naming no folder in the roots is a hub id, kept as written (nothing is fetched for it here);
    anything else is a path, and confined as one ('..' included)."""
    from tuneforge.modelref.locate import looks_like_hub_id

    return looks_like_hub_id(value) and ".." not in Path(value).parts and \
        not any((root / value).exists() for root in roots)


def is_plain_name(name: str) -> bool:
    """A file name inside a folder (gguf_file, a dataset's file), not a path: no separator, not '.' or '..'."""
    return bool(name) and Path(name).name == name and name not in (".", "..") and "\x00" not in name


def _in_roots(relative: Path, roots: list[Path]) -> Path:
    for root in roots:
        if (root / relative).exists():
            return root / relative
    return roots[0] / relative


# fsspec protocols of object stores (and the in-process `memory`, for tests). Local paths go through the allowed-
# folder check instead; http(s), zip, chained URLs and the like could read the server's own files or network.
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "hf", "memory")


def uri_problem(uri: str) -> str | None:
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in OBJECT_STORES or "::" in uri:
        return (f"{uri}: only object-store URIs are read ({', '.join(s + '://' for s in OBJECT_STORES[:-1])}); "
                "give a local file or folder as a path inside the allowed folders")
    return None
