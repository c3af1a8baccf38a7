"""Data-parallel training: shares of a batch add up to the whole batch, and 2 processes match 1."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers.distributed import main, max_abs_difference
from helpers.training import TrainConfig, Trainer


class ShareOfTwo:
    """The parts of an Accelerator the Trainer uses, as process `rank` of 2 sees them, without DDP."""

    num_processes, device, is_main_process = 2, torch.device("cpu"), True

    def __init__(self, rank: int) -> None:
        self.process_index = rank

    def prepare_model(self, model):
        return model

    def unwrap_model(self, model):
        return model

    def no_sync(self, model):
        return contextlib.nullcontext()

    def reduce(self, tensor, reduction):
        return tensor  # one process alone: nothing to average with


def mse_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(model(batch["x"]), batch["y"])


@pytest.mark.parametrize("rows", [8, 7])
def test_the_shares_of_two_processes_average_to_the_whole_batch_gradient(rows):
    torch.manual_seed(0)
    batch = {"x": torch.randn(rows, 4), "y": torch.randn(rows, 1)}
    gradients = []
    for accelerator in (None, ShareOfTwo(0), ShareOfTwo(1)):
        torch.manual_seed(1)
        model = nn.Linear(4, 1)
        trainer = Trainer(model, mse_loss, TrainConfig(steps=1, learning_rate=0.1), accelerator=accelerator)
        trainer._accumulate(batch)
        gradients.append(model.weight.grad.clone())
    whole, rank_0, rank_1 = gradients
    torch.testing.assert_close((rank_0 + rank_1) / 2, whole)  # what DDP's all-reduce computes


def test_a_batch_smaller_than_the_number_of_processes_is_a_clear_error():
    trainer = Trainer(nn.Linear(4, 1), mse_loss, TrainConfig(steps=1, learning_rate=0.1), accelerator=ShareOfTwo(0))
    with pytest.raises(ValueError, match="cannot be shared by 2 processes"):
        trainer._accumulate({"x": torch.randn(1, 4), "y": torch.randn(1, 1)})


def test_out_of_memory_with_several_processes_stops_with_the_setting_to_use():
    def out_of_memory(model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    config = TrainConfig(steps=1, learning_rate=0.1)
    trainer = Trainer(nn.Linear(4, 1), out_of_memory, config, accelerator=ShareOfTwo(1))
    with pytest.raises(torch.OutOfMemoryError, match="on process 1: .* accumulation=2 in TrainConfig"):
        trainer.train_step({"x": torch.randn(4, 4), "y": torch.randn(4, 1)})


def test_the_command_line_rejects_a_missing_output_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--out", str(tmp_path / "missing" / "run.pt")])
    assert stopped.value.code == 2 and "does not exist" in capsys.readouterr().err


def run_command(command: list[str]) -> None:
    env = dict(os.environ, TUTORIAL_PROFILE="cpu", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]


def test_two_processes_launched_from_the_command_line_match_one(tmp_path, sample_path):
    settings = ["--steps", "3", "--reviews", "48", "--max-length", "64", "--cpu"]
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    run_command([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                 "--mixed_precision", "no", "--dynamo_backend", "no",
                 "-m", "helpers.distributed", "--out", str(tmp_path / "two.pt"), *settings])
    run_command([sys.executable, "-m", "helpers.distributed", "--out", str(tmp_path / "one.pt"), *settings])
    two, one = (torch.load(tmp_path / f"{n}.pt", weights_only=False) for n in ("two", "one"))
    assert (two["processes"], one["processes"]) == (2, 1)
    assert len(two["history"]) == len(one["history"]) == 3
    for a, b in zip(two["history"], one["history"]):
        assert abs(a["loss"] - b["loss"]) <= 1e-4
    assert max_abs_difference(two["weights"], one["weights"]) <= 1e-4
