"""The training loop: schedule, micro-batches, out-of-memory back-off, checkpoints and resume."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import pytest
import torch
from conftest import StubTokenizer, notebook_definitions, tiny_model
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling

from helpers.mlm import masked_only_loss
from helpers.training import CHECKPOINT, PRECISIONS, TrainConfig, Trainer, split_batch, warmup_then_decay


def loader_for(epoch: int) -> DataLoader:
    """Forty random blocks of 12 tokens, shuffled per epoch, masked at collation (the global RNG)."""
    blocks = torch.randint(4, 50, (40, 12), generator=torch.Generator().manual_seed(1)).tolist()
    order = torch.randperm(40, generator=torch.Generator().manual_seed(epoch)).tolist()
    collate = DataCollatorForLanguageModeling(StubTokenizer(), mlm_probability=0.3)
    return DataLoader([{"input_ids": blocks[i]} for i in order], batch_size=8, collate_fn=collate)


CONFIG = TrainConfig(steps=9, learning_rate=1e-3, log_every=1, checkpoint_every=2, seed=3)


def parameters(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}


class Interrupt(Exception):
    pass


def test_warmup_rises_linearly_then_decays_to_zero():
    values = [warmup_then_decay(s, warmup_steps=4, total_steps=12) for s in range(12)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4:] == pytest.approx([(12 - s) / 8 for s in range(4, 12)])
    assert values[-1] > 0 and warmup_then_decay(12, 4, 12) == 0


def test_split_batch_keeps_every_row_once():
    batch = {"x": torch.arange(7), "y": torch.arange(7) * 10}
    parts = split_batch(batch, 3)
    assert [len(p["x"]) for p in parts] == [2, 3, 2]
    assert torch.equal(torch.cat([p["y"] for p in parts]), batch["y"])


def test_resumed_run_reaches_the_same_parameters_as_an_unbroken_one(tmp_path, capsys):
    unbroken = Trainer(tiny_model(), masked_only_loss, CONFIG)  # dropout on, masks drawn at collation
    history = unbroken.fit(loader_for)  # 9 steps of 5 batches: crosses an epoch boundary

    def stop_after_five(history: list[dict]) -> None:
        if history[-1]["step"] == 5:
            raise Interrupt  # like a Colab disconnect after step 5; the last checkpoint is at step 4

    broken = Trainer(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    with pytest.raises(Interrupt):
        broken.fit(loader_for, on_log=stop_after_five)
    probe = Trainer(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    assert probe.load_checkpoint() and (probe.step, probe.batch_index) == (4, 4)

    resumed = Trainer(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    resumed_history = resumed.fit(loader_for)
    assert [h["step"] for h in resumed_history] == list(range(1, 10))
    assert [h["loss"] for h in resumed_history] == pytest.approx([h["loss"] for h in history], rel=1e-6)
    reference = parameters(unbroken)
    for name, value in parameters(resumed).items():
        torch.testing.assert_close(value, reference[name], rtol=0, atol=0, msg=name)
    assert not list(tmp_path.iterdir()), "a finished run leaves no checkpoint (nor a partial one) behind"
    assert "Finished: removed the checkpoint" in capsys.readouterr().out


def stop_at(step: int) -> Callable[[list[dict]], None]:
    def stop(history: list[dict]) -> None:
        if history[-1]["step"] == step:
            raise Interrupt
    return stop


def test_a_checkpoint_of_other_settings_is_ignored(tmp_path, capsys):
    with pytest.raises(Interrupt):
        Trainer(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path).fit(loader_for, on_log=stop_at(3))
    assert (tmp_path / CHECKPOINT).exists()
    other = TrainConfig(**{**CONFIG.__dict__, "learning_rate": 5e-4})
    trainer = Trainer(tiny_model(), masked_only_loss, other, checkpoint_dir=tmp_path)
    assert not trainer.load_checkpoint() and trainer.step == 0
    assert "other settings" in capsys.readouterr().out


def test_out_of_memory_halves_the_micro_batch_and_gives_the_same_step(capsys):
    def small_memory_loss(model, batch):
        if len(batch["input_ids"]) > 2:  # pretend only two sequences fit at once
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return masked_only_loss(model, batch)

    config = TrainConfig(steps=3, learning_rate=1e-3, log_every=1)
    backing_off = Trainer(tiny_model(), small_memory_loss, config)
    backing_off.fit(loader_for)
    assert backing_off.accumulation == 4  # 8 rows: 1 -> 2 -> 4 micro-batches of 2
    assert capsys.readouterr().out.count("Out of memory") == 2

    planned = Trainer(tiny_model(), masked_only_loss, TrainConfig(**{**config.__dict__, "accumulation": 4}))
    planned.fit(loader_for)
    for name, value in parameters(planned).items():
        torch.testing.assert_close(parameters(backing_off)[name], value, msg=name)


def test_out_of_memory_with_single_rows_says_what_to_change():
    def no_memory_loss(model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    trainer = Trainer(tiny_model(), no_memory_loss, TrainConfig(steps=1, learning_rate=1e-3))
    with pytest.raises(torch.OutOfMemoryError, match="one sequence per micro-batch"):
        trainer.fit(loader_for)


def test_out_of_memory_frees_the_failed_graph_before_retrying(monkeypatch):
    alive = []

    class Graph:  # stands for the autograd graph a failed forward pass leaves on its frames
        pass

    def small_memory_loss(model, batch):
        if len(batch["input_ids"]) > 4:
            graph = Graph()
            alive.append(weakref.ref(graph))
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return masked_only_loss(model, batch)

    freed_before_retry = []
    monkeypatch.setattr("helpers.training.free_memory",
                        lambda: (gc.collect(), freed_before_retry.append(all(r() is None for r in alive))))
    Trainer(tiny_model(), small_memory_loss, TrainConfig(steps=1, learning_rate=1e-3)).fit(loader_for)
    assert freed_before_retry == [True], "the graph of the failed micro-batch must be gone when memory is freed"


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")  # the stand-in step
def test_out_of_memory_in_the_optimizer_step_retries_once_then_says_what_to_do(monkeypatch):
    trainer = Trainer(tiny_model(), masked_only_loss, TrainConfig(steps=2, learning_rate=1e-3))
    real_step, failures = trainer.optimizer.step, []

    def first_step_fails(*args, **kwargs):  # AdamW allocating its moments on the first step
        if not failures:
            failures.append(1)
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", first_step_fails)
    trainer.fit(loader_for)
    assert trainer.step == 2 and failures == [1]

    stuck = Trainer(tiny_model(), masked_only_loss, TrainConfig(steps=1, learning_rate=1e-3))
    monkeypatch.setattr(stuck.optimizer, "step", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError()))
    with pytest.raises(torch.OutOfMemoryError, match="in the optimizer step at step 0.*AdamW's two moments"):
        stuck.fit(loader_for)


def test_empty_training_data_is_a_clear_error():
    trainer = Trainer(tiny_model(), masked_only_loss, TrainConfig(steps=1, learning_rate=1e-3))
    with pytest.raises(ValueError, match="no batches"):
        trainer.fit(lambda epoch: [])


def test_the_notebook_loop_and_the_helper_end_with_the_same_weights():
    train_by_hand = notebook_definitions("03_mlm_finetuning.ipynb", ["train_by_hand"],
                                         warmup_then_decay=warmup_then_decay, masked_only_loss=masked_only_loss)
    batches = list(loader_for(0))
    config = TrainConfig(steps=4, learning_rate=1e-3, warmup_fraction=0.25, seed=5, log_every=1)
    by_hand = tiny_model()
    losses = train_by_hand["train_by_hand"](by_hand, batches, steps=4, learning_rate=1e-3, warmup_fraction=0.25, seed=5)
    helper = Trainer(tiny_model(), masked_only_loss, config)
    history = helper.fit(lambda epoch: batches)
    assert [h["loss"] for h in history] == pytest.approx(losses, rel=1e-6)
    for (name, a), b in zip(by_hand.named_parameters(), helper.model.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown precision 'fp8': choose one of " + ", ".join(PRECISIONS)):
        Trainer(tiny_model(), masked_only_loss, TrainConfig(steps=1, learning_rate=1e-3, precision="fp8"))
