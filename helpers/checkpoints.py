"""Checkpoints of a training run: written atomically, resumed only by an equal run, removed when it ends.

`helpers.training.TrainingLoop` keeps one checkpoint per run in its checkpoint folder. A checkpoint
holds a fingerprint of what determines the run (its settings, its starting model from
`model_identity`, its data from `data_fingerprint`); a run with another fingerprint ignores it, and
so does one whose checkpoint cannot be read or holds weights that are not this model's, or NaN.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch
from torch import nn

from helpers.files import atomic_path

CHECKPOINT = "checkpoint.pt"
PARTS = ("position", "model", "optimizer", "schedule", "scaler", "history")  # besides the fingerprint


def atomic_save(obj: object, path: Path) -> None:
    """Write `obj` with torch.save so that a crash never leaves half a file (see helpers.files)."""
    with atomic_path(path) as partial:
        torch.save(obj, partial)


def data_fingerprint(*columns: object) -> str:
    """Return a short digest of the training data (token ids, labels): a checkpoint of other data is not resumed."""
    digest = hashlib.sha256()
    for column in columns:
        digest.update(json.dumps(column, separators=(",", ":"), default=str).encode())
    return digest.hexdigest()[:16]


def model_identity(model: nn.Module) -> dict:
    """Return what identifies the model a run starts from: its class, its configuration and where it came from.

    For a model loaded from a local folder, the weights file's size and modification time stand for
    its contents (a re-run of notebook 03 rewrites the adapted encoder, and 04 must not resume the old one).
    """
    model = getattr(model, "module", model)  # DDP wraps it
    identity = {"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())}
    config = getattr(model, "config", None)
    if config is not None:
        settings = {k: v for k, v in config.to_dict().items() if k not in ("transformers_version", "_name_or_path")}
        identity["config"] = data_fingerprint(settings)
        source = str(getattr(config, "_name_or_path", "") or "")
        identity["source"] = source
        weights = Path(source) / "model.safetensors"
        if source and weights.is_file():
            identity["weights_file"] = (weights.stat().st_size, weights.stat().st_mtime_ns)
    return identity


def save_checkpoint(folder: Path, state: dict) -> None:
    """Write a run's state (its fingerprint and PARTS) as the folder's checkpoint, in one atomic file."""
    atomic_save(state, folder / CHECKPOINT)


def checkpoint_problem(state: dict, model: nn.Module) -> str | None:
    """Return what makes a checkpoint of this run unusable for `model` (missing parts, other weights, NaN), or None."""
    missing = [key for key in PARTS if key not in state]
    if missing:
        return f"it lacks its {', '.join(missing)}"
    weights, expected = state["model"], model.state_dict()
    if not isinstance(weights, dict) or weights.keys() != expected.keys():
        return "its weights are not this model's"
    if any(v.is_floating_point() and not torch.isfinite(v).all() for v in weights.values()):
        return "its weights hold NaN or infinite values"
    return None


def load_checkpoint(folder: Path, fingerprint: dict, model: nn.Module) -> dict | None:
    """Return the state in the folder's checkpoint if it is of a run with `fingerprint` and usable for `model`.

    Returns None, saying why in one sentence, when there is none, it cannot be read, it belongs to
    another run or it cannot be trusted; raises when the path is a file or pipe where a folder or
    checkpoint file belongs. Nothing is loaded into `model`: the caller does that.
    """
    path = folder / CHECKPOINT
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, where training keeps its checkpoint folder: "
                                 "move it away (or set TUTORIAL_WORKDIR to another folder).")
    if not path.exists():
        return None
    if not path.is_file():  # a folder or a named pipe: torch.load would fail, or wait forever
        raise ValueError(f"{path} is not a regular file (a folder or a pipe?): remove it; training writes its "
                         "checkpoint there.")
    try:  # weights_only: a checkpoint file cannot run code when it is loaded
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        print(f"Ignoring {path}: it cannot be read ({type(error).__name__}; a damaged or foreign file). "
              "Training starts from step 0 and replaces it.")
        return None
    stored = state.get("fingerprint") if isinstance(state, dict) else None
    if stored != fingerprint:
        stored = stored if isinstance(stored, dict) else {}
        differs = [key for key, value in fingerprint.items() if stored.get(key) != value]
        print(f"Ignoring {path}: it belongs to a run with other settings ({', '.join(differs) or 'format'}). "
              "Training starts from step 0 and replaces it.")
        return None
    problem = checkpoint_problem(state, model)  # checked before anything is loaded: no half-loaded model
    if problem:
        print(f"Ignoring {path}: {problem}. Training starts from step 0 and replaces it.")
        return None
    return state


def remove_checkpoint(folder: Path) -> int:
    """Delete the folder's checkpoint (and a half-written one); return the bytes freed."""
    freed = 0
    for path in [folder / CHECKPOINT, *folder.glob(CHECKPOINT + ".*.partial")]:
        if path.exists():  # a partial file is what a process killed while writing left behind
            freed += path.stat().st_size
            path.unlink()
    return freed
