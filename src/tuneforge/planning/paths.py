"""User paths are confined to the configured roots: no '../../etc', no symlink escape."""

from __future__ import annotations

from pathlib import Path

from tuneforge.schemas import ConfigProblem


def confine(
    value: str | Path, roots: list[Path], field: str, base: Path | None = None
) -> tuple[Path | None, ConfigProblem | None]:
    """The resolved path when it lies inside one of `roots`, else the problem to report for `field`. A relative
    path starts at `base` (default: the first root)."""
    raw = str(value)
    if "\x00" in raw:
        return None, ConfigProblem(field, "contains a NUL character")
    if ".." in Path(raw).parts:
        return None, ConfigProblem(field, f"{raw!r} contains '..'; give a path without it, inside the allowed folders "
                                          f"({', '.join(str(r) for r in roots)})")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base or roots[0]) / path
    resolved = path.resolve()  # follows symlinks: a link out of a root is outside
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved, None
    allowed = ", ".join(str(r) for r in roots)
    return None, ConfigProblem(field, f"{raw!r} resolves to {resolved}, outside the allowed folders ({allowed}); "
                                      "use a path inside them or add a folder to TUNEFORGE_ALLOWED_ROOTS")


def is_inside(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


# fsspec protocols of object stores (and the in-process `memory`, for tests). Local paths go through the allowed-
# folder check instead; http(s), zip, chained URLs and the like could read the server's own files or network.
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "hf", "memory")


def uri_problem(uri: str) -> str | None:
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in OBJECT_STORES or "::" in uri:
        return (f"{uri}: only object-store URIs are read ({', '.join(s + '://' for s in OBJECT_STORES[:-1])}); "
                "give a local file or folder as a path inside the allowed folders")
    return None
