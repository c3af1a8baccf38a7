"""The first code cell of every notebook: pick the device, seed everything, quiet the libraries.

Introduced in notebook 01.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from helpers.device import pick_device
from helpers.profile import (
    DATA_ENV,
    DATASET_ENV,
    IMDB_HUB_ID,
    MODEL_ENV,
    MODELS_ENV,
    Profile,
    describe,
    get_profile,
    work_dir,
)

LIBRARIES = ("torch", "transformers", "tokenizers", "datasets", "accelerate", "scikit-learn", "matplotlib")

T = TypeVar("T")


@dataclass(frozen=True)
class Session:
    """What a notebook needs to know about the machine it runs on."""

    profile: Profile
    device: torch.device
    seed: int
    started: float = field(default_factory=time.perf_counter)  # for the SUMMARY line's seconds

    @property
    def smoke(self) -> bool:
        """Whether this is a shrunken run (TUTORIAL_SCALE below 1), where trained-model claims cannot hold."""
        return self.profile.scale < 1

    def place(self, thing: T) -> T:
        """Return a model, tensor or dict of tensors on the session's device: the one place that puts them there.

        Helpers that train (TrainingLoop, Accelerate) move their model to this device; a model a notebook
        builds beside them must go there too, or a GPU run mixes devices where a CPU run cannot.
        """
        if isinstance(thing, Mapping):  # a dict of tensors, or a tokenizer's BatchEncoding
            return {key: self.place(value) for key, value in thing.items()}
        return thing.to(self.device) if isinstance(thing, torch.nn.Module | torch.Tensor) else thing

    def expect(self, condition: bool, claim: str) -> None:
        """Assert a claim about what a trained model does or how fast it runs; a smoke run only reports it."""
        if self.smoke:
            outcome = "holds" if condition else "does not hold"
            print(f"smoke run, not asserted: {claim} ({outcome} here; a tiny random model, a few steps)")
            return
        assert condition, claim


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a re-run draws the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def quiet_libraries(offline: bool) -> None:
    """Silence progress bars and advisory warnings that would clutter outputs and break nbval."""
    if offline:  # the data and the model are on this machine: fail fast instead of waiting on the Hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for module in ("transformers", "datasets", "torch", "accelerate", "huggingface_hub", "sklearn"):
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)


def library_versions() -> dict[str, str]:
    """Return the installed version of each library the series depends on."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def in_colab() -> bool:
    """Return whether this kernel runs on Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def use_google_drive(folder: str = "bert-imdb-tutorial", mount_point: str = "/content/drive") -> Path | None:
    """On Colab, mount Google Drive and save finished models there; elsewhere change nothing.

    Each Colab notebook runs on its own machine: the encoder notebook 03 adapts and the classifier
    notebook 04 trains are gone for the next notebook unless they are on Drive. Checkpoints stay on
    the machine's own disk: each bert-base checkpoint is about 1.3 GB and is overwritten several
    times per run, and every overwrite on Drive goes to its Trash, which counts against the 15 GB
    quota. Only finished models (about 0.4 GB each for bert-base) are written to Drive.

    It sets $TUTORIAL_MODELS_DIR, which `get_profile` reads: call it before `start_notebook` (the
    notebooks' optional Drive cell comes before their first cell), or the profile already made
    keeps the old models folder.
    """
    if not in_colab():
        print(f"Not on Colab: models and checkpoints stay in {work_dir(get_profile()).parent}")
        return None
    from google.colab import drive  # only importable on Colab

    drive.mount(mount_point)
    target = Path(mount_point) / "MyDrive" / folder
    target.mkdir(parents=True, exist_ok=True)
    os.environ[MODELS_ENV] = str(target)
    print(f"Finished models on Google Drive: {target}; checkpoints stay on this machine's disk "
          f"({work_dir(get_profile()).parent}). If the notebook's first cell has run already, run it again: "
          "it reads the models folder.")
    return target


def data_source(profile: Profile) -> str:
    """Return where the reviews come from and how many of each official split the profile takes, in words."""
    if profile.data_file:
        return f"{Path(profile.data_file).name} (your own file, from {DATA_ENV})"
    where = (f"{IMDB_HUB_ID} from a local copy ({DATASET_ENV})" if profile.local_data
             else f"{profile.dataset_id} from the Hugging Face Hub")
    sizes = [f"{'all' if n is None else f'{n:,}'} {name}" for name, n in
             (("train", profile.train_reviews), ("test", profile.test_reviews),
              ("unlabelled", profile.unsupervised_reviews))]
    counts = (profile.train_reviews, profile.test_reviews, profile.unsupervised_reviews)
    if all(n is None for n in counts):
        return f"{where}: {', '.join(sizes)} reviews (the official splits)"
    return f"{where}: {', '.join(sizes)} reviews (stratified subsets of the official splits, seed {profile.seed})"


def start_notebook(profile: str | None = None, seed: int | None = None, verbose: bool = True,
                   uses: Sequence[str] | None = None) -> Session:
    """Choose profile and device, seed everything, quiet the libraries and print what was chosen.

    `uses` names the profile fields the notebook reads: only those are printed (all when None).
    """
    chosen = get_profile(profile)
    quiet_libraries(offline=chosen.offline)
    from helpers.plotting import use_style

    use_style()
    session = Session(profile=chosen, device=pick_device(), seed=chosen.seed if seed is None else seed)
    seed_everything(session.seed)
    if verbose:
        print("versions: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()))
        card = f" ({torch.cuda.get_device_name()})" if session.device.type == "cuda" else ""
        print(f"device   : {session.device}{card}")
        print(f"data     : {data_source(chosen)}")
        if chosen.model_override:
            print(f"model    : {chosen.model_override} (from {MODEL_ENV})")
        if session.smoke:
            print(f"smoke run: {chosen.scale} of the steps; claims about trained models are reported, not asserted")
        print(describe(chosen, uses))
        if uses is not None:
            print("(the settings this notebook reads; all of them: helpers.profile.describe(profile))")
    return session


def print_summary(session: Session, notebook: str, **figures: float | int | str | None) -> dict:
    """Print the notebook's headline figures as one line `SUMMARY {json}` and return them."""
    from helpers.models import model_name

    summary = {"notebook": notebook, "profile": session.profile.name, "model": model_name(session.profile)}
    summary.update(figures)
    summary["seconds"] = round(time.perf_counter() - session.started, 1)
    print("SUMMARY " + json.dumps(summary))
    return summary
