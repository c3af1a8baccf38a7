"""Data-parallel training: shares of a batch add up to the whole batch, and 2 processes match 1."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from torch import nn

from helpers.classification import new_classifier
from helpers.distributed import (
    ReplicaRun,
    launch,
    launch_command,
    main,
    max_abs_difference,
    replica_model,
    replica_reviews,
    train_replica,
)
from helpers.profile import get_profile
from helpers.training import TrainConfig, TrainingLoop


class ShareOfTwo:
    """The parts of an Accelerator the TrainingLoop uses, as process `rank` of 2 sees them, without DDP."""

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
        trainer = TrainingLoop(model, mse_loss, TrainConfig(steps=1, learning_rate=0.1), accelerator=accelerator)
        trainer._accumulate(batch)
        gradients.append(model.weight.grad.clone())
    whole, rank_0, rank_1 = gradients
    torch.testing.assert_close((rank_0 + rank_1) / 2, whole)  # what DDP's all-reduce computes


def test_a_batch_smaller_than_the_number_of_processes_is_a_clear_error():
    config = TrainConfig(steps=1, learning_rate=0.1)
    trainer = TrainingLoop(nn.Linear(4, 1), mse_loss, config, accelerator=ShareOfTwo(0))
    with pytest.raises(ValueError, match="cannot be shared by 2 processes"):
        trainer._accumulate({"x": torch.randn(1, 4), "y": torch.randn(1, 1)})


def test_out_of_memory_with_several_processes_stops_with_the_setting_to_use():
    def out_of_memory(model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    config = TrainConfig(steps=1, learning_rate=0.1)
    trainer = TrainingLoop(nn.Linear(4, 1), out_of_memory, config, accelerator=ShareOfTwo(1))
    with pytest.raises(torch.OutOfMemoryError, match="on process 1: .* accumulation=2 in TrainConfig"):
        trainer.train_step({"x": torch.randn(4, 4), "y": torch.randn(4, 1)})


def test_the_command_line_rejects_a_missing_output_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--out", str(tmp_path / "missing" / "run.pt")])
    assert stopped.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_the_replica_trains_on_both_classes_of_a_label_sorted_split():
    sorted_split = Dataset.from_dict({"text": [f"review {i}" for i in range(400)], "label": [0] * 200 + [1] * 200})
    reviews = replica_reviews(sorted_split, ReplicaRun(reviews=48))
    assert len(reviews) == 48 and sum(reviews["label"]) == 24


def built_the_same(a: nn.Module, b: nn.Module) -> bool:
    """Return whether two classifiers have one configuration, attention kernel, trainable set and weights."""
    trainable = [{n for n, p in m.named_parameters() if p.requires_grad} for m in (a, b)]
    weights = [m.state_dict() for m in (a, b)]
    return (a.config.to_dict() == b.config.to_dict() and a.config._attn_implementation == b.config._attn_implementation
            and trainable[0] == trainable[1] and weights[0].keys() == weights[1].keys()
            and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]))


def test_the_replica_is_the_classifier_new_classifier_builds(clean_env):
    cpu = get_profile("cpu")
    replica = replica_model(ReplicaRun(seed=3), cpu)
    assert built_the_same(replica, new_classifier(cpu, seed=3)), "the cpu profile trains without dropout anyway"
    assert not replica.bert.embeddings.word_embeddings.weight.requires_grad, "the profile freezes them"
    with_dropout = dataclasses.replace(cpu, dropout=0.1, attention_dropout=0.1, freeze_word_embeddings=False)
    assert built_the_same(replica_model(ReplicaRun(seed=3, dropout=True), with_dropout),
                          new_classifier(with_dropout, seed=3))
    without = replica_model(ReplicaRun(seed=3), with_dropout)
    assert without.config.hidden_dropout_prob == without.config.attention_probs_dropout_prob == 0.0
    assert built_the_same(without, new_classifier(dataclasses.replace(with_dropout, dropout=0.0,
                                                                      attention_dropout=0.0), seed=3))


def test_the_launch_command_carries_every_setting(tmp_path, monkeypatch):
    run = ReplicaRun(steps=3, learning_rate=3e-5, precision="bf16", cpu=True, dropout=False)
    command = launch_command(run, tmp_path / "out.pt", processes=4)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"], "the kernel's own interpreter"
    assert command[command.index("--num_processes") + 1] == "4"
    received = []
    monkeypatch.setattr("helpers.distributed.train_replica", lambda run, out: received.append((run, Path(out))))
    assert main(command[command.index("helpers.distributed") + 1:]) == 0
    assert received == [(run, tmp_path / "out.pt")], "the script must rebuild exactly the run it was given"


@pytest.mark.slow
def test_the_kernel_and_the_launched_processes_run_one_profile_when_the_kernel_sees_a_gpu(tmp_path, monkeypatch):
    # The reader's environment: no TUTORIAL_PROFILE, and a kernel that sees CUDA (faked here) while
    # the launched CPU processes do not (CUDA_VISIBLE_DEVICES=""). Before, the kernel chose the gpu
    # profile (bert-base) and the children the cpu one (MiniLM), and the comparison failed.
    monkeypatch.delenv("TUTORIAL_PROFILE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set for this test only; quiet_libraries would set it for good
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    run = ReplicaRun(steps=3, reviews=48, max_length=64, cpu=True)
    two = launch(run, tmp_path / "two.pt", processes=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    # What a real GPU answers outside graph capture. torch 2.11's Adam asks it whenever CUDA is
    # available; on a CUDA build of torch (Colab's) without a driver, the real call fails.
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    assert get_profile().name == "gpu", "the kernel alone would choose the gpu profile"
    train_replica(run, tmp_path / "one.pt")  # in this process, as notebook 06 runs it
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    assert (two["processes"], one["processes"]) == (2, 1)
    assert two["run"]["profile"] == one["run"]["profile"] == "cpu"
    assert len(two["history"]) == len(one["history"]) == 3
    # fp32: two processes average their gradients with an all-reduce, one sums them in one pass; that
    # reordering is ulps per step, and 6 AdamW steps carry it to about 1e-6 of the weights (measured 4.5e-06)
    for a, b in zip(two["history"], one["history"]):
        assert abs(a["loss"] - b["loss"]) <= 1e-4
    assert max_abs_difference(two["weights"], one["weights"]) <= 1e-4
