"""Write files and folders atomically: readers see the old version or the new one, never half of one.

Every checkpoint, saved model, cached sample, notebook and benchmark table is written this way:

    with atomic_path(target) as partial:
        torch.save(state, partial)        # or frame.to_parquet(partial), model.save_pretrained(partial)

The work goes to a temporary name beside `target` (so the rename stays on one file system) that
holds the process id, so processes writing the same target at once do not share it. When the
block ends normally the result is renamed into place; on any error, or Ctrl-C, it is deleted and
`target` is left as it was. A process killed outright (SIGKILL, a recycled Colab runtime) leaves
its `*.partial` behind, never a damaged `target`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def partial_path(path: str | os.PathLike) -> Path:
    """Return the temporary name this process writes `path` under."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}.partial")


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write a file or a folder to; rename it to `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    remove(partial)
    try:
        yield partial
        if not partial.exists():
            raise FileNotFoundError(f"Nothing was written to {partial}: {path} is left as it was.")
        if partial.is_dir() and path.is_dir():  # a folder cannot be renamed over a folder: swap it out first
            old = path.with_name(f"{path.name}.{os.getpid()}.old")
            os.replace(path, old)
            os.replace(partial, path)
            remove(old)
        else:
            os.replace(partial, path)
    finally:
        remove(partial)
