"""Data-parallel training with Hugging Face Accelerate: the same function on one process or many.

Introduced in notebook 06. `train_replica` is what every process runs: it builds notebook 04's
classifier with `helpers.classification.new_classifier` and trains it with
`helpers.training.TrainingLoop`, which keeps this process's rows of each global batch and lets
PyTorch DDP average the gradients across processes. The main process then saves the weights and
the history in one atomic file. `launch` starts it with `accelerate launch` in fresh processes,
from a notebook or a script; from a shell it is

    accelerate launch --multi_gpu --num_processes 2 -m helpers.distributed --out replica.pt

On a machine without GPUs `--multi_gpu` starts CPU processes that talk through gloo; on a
machine with GPUs the same command puts one process on each GPU (NCCL). Not
`accelerate.notebook_launcher`: it forks the kernel, which fails once the kernel has touched
CUDA, and on Colab with fewer than two GPUs it runs the function once in the kernel, whatever
`num_processes` says.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from datasets import Dataset
from transformers import AutoTokenizer

from helpers.batching import training_batches
from helpers.checkpoints import atomic_save
from helpers.classification import BertForReviewClassification, classification_loss, encode, new_classifier
from helpers.data import balanced_sample, load_reviews
from helpers.device import pick_device
from helpers.models import load_pretrained
from helpers.profile import Profile, get_profile
from helpers.session import quiet_libraries
from helpers.training import TrainConfig, TrainingLoop


@dataclass(frozen=True)
class ReplicaRun:
    """A short notebook 04 training run, small enough to repeat on one and on several processes."""

    steps: int = 6
    batch_size: int = 16  # global batch: rows per optimizer step, summed over all processes
    accumulation: int = 1  # micro-batches per process and step
    max_length: int = 128
    reviews: int = 192  # training reviews used (a stratified sample of the profile's train split)
    learning_rate: float = 1e-4
    precision: str = "fp32"
    dropout: bool = False  # the profile's dropout; off for the equality check: each process would draw its own masks
    seed: int = 0
    cpu: bool = False  # CPU processes talking through gloo even where there are GPUs
    # The profile every process runs, kernel and launched alike. The cpu profile's small model by
    # default: the check is DDP's arithmetic, which does not depend on the model's size, and bert-base
    # on Colab's two CPU cores would take minutes per run where MiniLM takes seconds.
    profile: str = "cpu"


def replica_reviews(train: Dataset, run: ReplicaRun) -> Dataset:
    """Return the run's training reviews: a stratified sample, since the Hub's splits are sorted by label."""
    return balanced_sample(train, run.reviews, run.seed)


def replica_model(run: ReplicaRun, profile: Profile) -> BertForReviewClassification:
    """Return the classifier every process starts from: notebook 04's (`new_classifier`), without dropout unless asked
    (then with the profile's dropout, which is none at `cpu`).

    The same head in every process (drawn with `run.seed`), the profile's attention kernel, and its
    word embeddings frozen where the profile freezes them.
    """
    if not run.dropout:
        profile = dataclasses.replace(profile, dropout=0.0, attention_dropout=0.0)
    return new_classifier(profile, seed=run.seed)


def train_replica(run: ReplicaRun, out: str | os.PathLike) -> None:
    """Train on this process's share of each batch; the main process writes weights and history to `out`."""
    profile = get_profile(run.profile)  # named, not guessed: a launched process sees no GPU (CUDA_VISIBLE_DEVICES="")
    quiet_libraries(offline=profile.offline)
    accelerator = Accelerator(cpu=run.cpu or pick_device().type == "cpu")  # CPU processes need cpu=True to meet
    try:
        if accelerator.device.type == "cpu" and accelerator.num_processes > 1:  # share the cores, don't fight
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // accelerator.num_processes))
        reviews = replica_reviews(load_reviews(profile)["train"], run)
        tokenizer = load_pretrained(AutoTokenizer, profile)
        encoded = encode(tokenizer, reviews["text"], run.max_length)
        model = replica_model(run, profile)
        config = TrainConfig(steps=run.steps, learning_rate=run.learning_rate, precision=run.precision,
                             accumulation=run.accumulation, seed=run.seed, log_every=1)
        trainer = TrainingLoop(model, classification_loss, config, accelerator=accelerator)
        batches = training_batches(encoded, reviews["label"], run.batch_size, tokenizer.pad_token_id, run.seed)
        history = trainer.fit(batches)
        if accelerator.is_main_process:
            weights = {k: v.detach().cpu() for k, v in accelerator.unwrap_model(trainer.model).state_dict().items()}
            atomic_save({"processes": accelerator.num_processes, "run": dataclasses.asdict(run),
                         "history": history, "weights": weights}, Path(out))
        accelerator.wait_for_everyone()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)  # a later launch starts from scratch


def script_arguments(run: ReplicaRun, out: str | os.PathLike) -> list[str]:
    """Return the command-line flags of `python -m helpers.distributed` that stand for `train_replica(run, out)`."""
    flags = ["--out", str(out)]
    for field in dataclasses.fields(ReplicaRun):
        value, flag = getattr(run, field.name), field.name.replace("_", "-")
        flags += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)]
    return flags


def launch_command(run: ReplicaRun, out: str | os.PathLike, processes: int) -> list[str]:
    """Return the `accelerate launch` command that runs `train_replica(run, out)` on `processes` processes."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", "helpers.distributed", *script_arguments(run, out)]


def launch(run: ReplicaRun, out: str | os.PathLike, processes: int = 2, timeout_s: int = 900) -> dict:
    """Run `train_replica` on `processes` fresh processes with `accelerate launch`; return what the main one saved.

    With `run.cpu` the processes do not see the GPUs at all: CPU processes talking through gloo,
    the same on a laptop, in CI, on a one-GPU Colab and on a machine with eight GPUs.
    """
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="") if run.cpu else None
    finished = subprocess.run(launch_command(run, out, processes), capture_output=True, text=True, env=env,
                              timeout=timeout_s)
    if finished.returncode != 0:
        raise RuntimeError(f"accelerate launch failed with exit code {finished.returncode}:\n{finished.stderr[-3000:]}")
    return torch.load(out, weights_only=True)  # tensors, numbers, strings: no code runs on load


def max_abs_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Return the largest absolute difference between two state dicts with the same keys."""
    if a.keys() != b.keys():
        raise ValueError("The two runs saved different parameters.")
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run `train_replica` in this process (accelerate launch starts many)."""
    defaults = ReplicaRun()
    parser = argparse.ArgumentParser(prog="python -m helpers.distributed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="file for the main process's weights and history")
    for field in dataclasses.fields(ReplicaRun):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=getattr(defaults, field.name))
        else:
            parser.add_argument(flag, type=type(getattr(defaults, field.name)), default=getattr(defaults, field.name))
    args = vars(parser.parse_args(argv))
    out = Path(args.pop("out"))
    if not out.parent.is_dir():
        parser.error(f"the folder {out.parent} does not exist")
    train_replica(ReplicaRun(**args), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
