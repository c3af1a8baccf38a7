"""The training loop: schedule, micro-batches, out-of-memory back-off, checkpoints and resume."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable

import pytest
import torch
from accelerate import Accelerator
from conftest import StubTokenizer, notebook_definitions, tiny_model
from torch.utils.data import DataLoader
from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling

from helpers.checkpoints import CHECKPOINT, data_fingerprint
from helpers.device import PRECISIONS
from helpers.mlm import masked_only_loss
from helpers.training import TrainConfig, TrainingLoop, split_batch, warmup_then_decay


def loader_for(epoch: int) -> DataLoader:
    """Forty random blocks of 12 tokens, shuffled per epoch, masked at collation (the global RNG)."""
    blocks = torch.randint(4, 50, (40, 12), generator=torch.Generator().manual_seed(1)).tolist()
    order = torch.randperm(40, generator=torch.Generator().manual_seed(epoch)).tolist()
    collate = DataCollatorForLanguageModeling(StubTokenizer(), mlm_probability=0.3)
    return DataLoader([{"input_ids": blocks[i]} for i in order], batch_size=8, collate_fn=collate)


CONFIG = TrainConfig(steps=9, learning_rate=1e-3, log_every=1, checkpoint_every=2, seed=3)


def parameters(trainer: TrainingLoop) -> dict[str, torch.Tensor]:
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
    unbroken = TrainingLoop(tiny_model(), masked_only_loss, CONFIG)  # dropout on, masks drawn at collation
    history = unbroken.fit(loader_for)  # 9 steps of 5 batches: crosses an epoch boundary

    def stop_after_five(history: list[dict]) -> None:
        if history[-1]["step"] == 5:
            raise Interrupt  # like a Colab disconnect after step 5; the last checkpoint is at step 4

    broken = TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    with pytest.raises(Interrupt):
        broken.fit(loader_for, on_log=stop_after_five)
    probe = TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    assert probe.load_checkpoint() and (probe.step, probe.batch_index) == (4, 4)

    resumed = TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    resumed_history = resumed.fit(loader_for)
    assert [h["step"] for h in resumed_history] == list(range(1, 10))
    assert [h["loss"] for h in resumed_history] == pytest.approx([h["loss"] for h in history], rel=1e-6)
    for key in ("step", "epoch", "learning_rate"):  # the entries before the break are kept, not recomputed
        assert [h[key] for h in resumed_history] == [h[key] for h in history], key
    seconds = [h["seconds"] for h in resumed_history]
    assert seconds == sorted(seconds), "training time carries on from the checkpoint instead of restarting at 0"
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


def interrupted_run(tmp_path, identity: dict | None = None) -> None:
    """Train to step 3 with checkpoints every 2 steps, then stop as a disconnect would."""
    with pytest.raises(Interrupt):
        TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path,
                     identity=identity).fit(loader_for, on_log=stop_at(3))
    assert (tmp_path / CHECKPOINT).exists()


def test_a_checkpoint_of_other_settings_is_ignored(tmp_path, capsys):
    interrupted_run(tmp_path)
    other = TrainConfig(**{**CONFIG.__dict__, "learning_rate": 5e-4})
    trainer = TrainingLoop(tiny_model(), masked_only_loss, other, checkpoint_dir=tmp_path)
    assert not trainer.load_checkpoint() and trainer.step == 0
    assert "other settings (config)" in capsys.readouterr().out


@pytest.mark.parametrize("change", ["data", "max_length", "model"])
def test_a_checkpoint_of_other_data_tokens_or_model_is_not_resumed(tmp_path, capsys, change):
    """The README says: shorten max_length and re-run. The old run's checkpoint must not stand in."""
    identity = {"data": data_fingerprint([[1, 2, 3]], [0]), "max_length": 512}
    interrupted_run(tmp_path, identity)
    assert TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path,
                        identity=identity).load_checkpoint()
    model = tiny_model()
    if change == "data":
        identity = {**identity, "data": data_fingerprint([[1, 2, 4]], [0])}
    elif change == "max_length":
        identity = {**identity, "max_length": 256}
    else:  # another starting model: a wider configuration
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=64, max_position_embeddings=32))
    trainer = TrainingLoop(model, masked_only_loss, CONFIG, checkpoint_dir=tmp_path, identity=identity)
    assert not trainer.load_checkpoint() and trainer.step == 0
    assert f"other settings ({change})" in capsys.readouterr().out


def test_a_checkpoint_from_an_encoder_saved_again_is_not_resumed(tmp_path, capsys):
    """The README says: re-running notebook 03 rewrites the adapted encoder, and 04 must not resume the old run."""
    import os

    encoder = tmp_path / "encoder"
    tiny_model().save_pretrained(encoder)
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(Interrupt):
        TrainingLoop(BertForMaskedLM.from_pretrained(encoder), masked_only_loss, CONFIG,
                     checkpoint_dir=checkpoints).fit(loader_for, on_log=stop_at(3))
    assert TrainingLoop(BertForMaskedLM.from_pretrained(encoder), masked_only_loss, CONFIG,
                        checkpoint_dir=checkpoints).load_checkpoint(), "the same encoder folder resumes"
    tiny_model().save_pretrained(encoder)  # notebook 03 again: same configuration, new weights file
    weights = encoder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000_000))  # a later run
    trainer = TrainingLoop(BertForMaskedLM.from_pretrained(encoder), masked_only_loss, CONFIG,
                           checkpoint_dir=checkpoints)
    assert not trainer.load_checkpoint() and trainer.step == 0
    assert "other settings (model)" in capsys.readouterr().out


def test_a_damaged_or_foreign_checkpoint_is_ignored_with_a_sentence(tmp_path, capsys):
    interrupted_run(tmp_path)
    path = tmp_path / CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a disk that filled up mid-copy
    assert not TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path).load_checkpoint()
    assert "cannot be read" in capsys.readouterr().out
    torch.save({"fingerprint": Interrupt()}, path)  # an arbitrary pickled object: weights_only refuses to run it
    assert not TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path).load_checkpoint()
    assert "cannot be read" in capsys.readouterr().out


def test_a_run_killed_while_writing_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    interrupted_run(tmp_path)
    before = (tmp_path / CHECKPOINT).read_bytes()

    def dies_half_way(obj, path):
        with open(path, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C, or the runtime going away, in the middle of torch.save

    trainer = TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint()
    monkeypatch.undo()
    assert (tmp_path / CHECKPOINT).read_bytes() == before and sorted(tmp_path.iterdir()) == [tmp_path / CHECKPOINT]
    (tmp_path / f"{CHECKPOINT}.999.partial").write_bytes(b"left by a process killed with SIGKILL")
    resumed = TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    resumed.fit(loader_for)
    assert resumed.step == CONFIG.steps and not list(tmp_path.iterdir()), "the finished run cleans up both"


def test_evaluation_runs_every_eval_every_steps_and_at_the_end_outside_the_training_time():
    calls = []

    def evaluate(model):
        calls.append(model.training)
        time.sleep(1.0)
        return {"score": len(calls)}

    config = TrainConfig(steps=7, learning_rate=1e-3, log_every=2, eval_every=3, seed=0)
    trainer = TrainingLoop(tiny_model(), masked_only_loss, config)
    start = time.perf_counter()
    history = trainer.fit(loader_for, evaluate=evaluate)
    wall = time.perf_counter() - start
    assert [h["step"] for h in history] == [2, 3, 4, 6, 7], "logged every 2 steps, and at each evaluation"
    assert [h.get("score") for h in history] == [None, 1, None, 2, 3] and calls == [False] * 3
    # The three evaluations slept at least 3 s of the wall time; training time leaves them out, however
    # loaded the machine (no second run to compare with, whose own time would vary).
    assert history[-1]["seconds"] <= wall - 3.0, "3 s of evaluation are not training time"


def test_any_batch_keys_train_and_only_token_batches_report_tokens():
    model = torch.nn.Linear(3, 1)
    rows = torch.randn(32, 3)
    batches = [{"x": rows[i:i + 8], "y": rows[i:i + 8].sum(1, keepdim=True)} for i in range(0, 32, 8)]

    def loss_fn(model, batch):
        return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])

    config = TrainConfig(steps=8, learning_rate=0.1, log_every=4, warmup_fraction=0.1)
    history = TrainingLoop(model, loss_fn, config).fit(lambda epoch: batches)
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["tokens_per_second"] is None
    assert history[-1]["samples_per_second"] > 0


def test_bf16_autocast_on_a_cpu_in_training_and_in_prediction():
    from helpers.batching import pad_batch
    from helpers.classification import BertForReviewClassification, predict_probabilities

    seen = []

    def recording_loss(model, batch):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return masked_only_loss(model, batch)

    config = TrainConfig(steps=1, learning_rate=1e-3, precision="bf16")
    TrainingLoop(tiny_model(), recording_loss, config, accelerator=Accelerator(cpu=True)).fit(loader_for)
    assert seen == [(True, torch.bfloat16)]

    torch.manual_seed(0)
    classifier = BertForReviewClassification(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                                        num_attention_heads=2, intermediate_size=64, num_labels=2))
    dtypes = []
    classifier.classifier.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    predict_probabilities(classifier, [[1, 5, 6, 2]], pad_id=0, precision="bf16")
    predict_probabilities(classifier, [[1, 5, 6, 2]], pad_id=0, precision="fp32")
    assert dtypes == [torch.bfloat16, torch.float32]
    assert pad_batch([[1, 5]], 0)["input_ids"].dtype == torch.long


def test_impossible_settings_are_refused_when_the_config_is_made():
    for bad in ({"steps": 0}, {"log_every": 0}, {"accumulation": 0}, {"eval_every": -1}):
        with pytest.raises(ValueError, match="TrainConfig needs|step counts"):
            TrainConfig(**{"steps": 5, "learning_rate": 1e-3, **bad})


def test_out_of_memory_halves_the_micro_batch_and_gives_the_same_step(capsys):
    def small_memory_loss(model, batch):
        if len(batch["input_ids"]) > 2:  # pretend only two sequences fit at once
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return masked_only_loss(model, batch)

    config = TrainConfig(steps=3, learning_rate=1e-3, log_every=1)
    backing_off = TrainingLoop(tiny_model(), small_memory_loss, config)
    backing_off.fit(loader_for)
    assert backing_off.accumulation == 4  # 8 rows: 1 -> 2 -> 4 micro-batches of 2
    assert capsys.readouterr().out.count("Out of memory") == 2

    planned = TrainingLoop(tiny_model(), masked_only_loss, TrainConfig(**{**config.__dict__, "accumulation": 4}))
    planned.fit(loader_for)
    for name, value in parameters(planned).items():
        torch.testing.assert_close(parameters(backing_off)[name], value, msg=name)


def test_out_of_memory_with_single_rows_says_what_to_change():
    def no_memory_loss(model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    trainer = TrainingLoop(tiny_model(), no_memory_loss, TrainConfig(steps=1, learning_rate=1e-3))
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
    TrainingLoop(tiny_model(), small_memory_loss, TrainConfig(steps=1, learning_rate=1e-3)).fit(loader_for)
    assert freed_before_retry == [True], "the graph of the failed micro-batch must be gone when memory is freed"


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")  # the stand-in step
def test_out_of_memory_in_the_optimizer_step_retries_once_then_says_what_to_do(monkeypatch):
    trainer = TrainingLoop(tiny_model(), masked_only_loss, TrainConfig(steps=2, learning_rate=1e-3))
    real_step, failures = trainer.optimizer.step, []

    def first_step_fails(*args, **kwargs):  # AdamW allocating its moments on the first step
        if not failures:
            failures.append(1)
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", first_step_fails)
    trainer.fit(loader_for)
    assert trainer.step == 2 and failures == [1]

    stuck = TrainingLoop(tiny_model(), masked_only_loss, TrainConfig(steps=1, learning_rate=1e-3))
    monkeypatch.setattr(stuck.optimizer, "step", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError()))
    with pytest.raises(torch.OutOfMemoryError, match="in the optimizer step at step 0.*AdamW's two moments"):
        stuck.fit(loader_for)


def test_empty_training_data_is_a_clear_error():
    trainer = TrainingLoop(tiny_model(), masked_only_loss, TrainConfig(steps=1, learning_rate=1e-3))
    with pytest.raises(ValueError, match="no batches"):
        trainer.fit(lambda epoch: [])


def test_the_notebook_loop_and_the_helper_end_with_the_same_weights():
    train_by_hand = notebook_definitions("03_mlm_finetuning.ipynb", ["train_by_hand"],
                                         warmup_then_decay=warmup_then_decay, masked_only_loss=masked_only_loss)
    batches = list(loader_for(0))
    config = TrainConfig(steps=4, learning_rate=1e-3, warmup_fraction=0.25, seed=5, log_every=1)
    by_hand = tiny_model()
    losses = train_by_hand["train_by_hand"](by_hand, batches, steps=4, learning_rate=1e-3, warmup_fraction=0.25, seed=5)
    helper = TrainingLoop(tiny_model(), masked_only_loss, config)
    history = helper.fit(lambda epoch: batches)
    assert [h["loss"] for h in history] == pytest.approx(losses, rel=1e-6)
    for (name, a), b in zip(by_hand.named_parameters(), helper.model.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown precision 'fp8': choose one of " + ", ".join(PRECISIONS)):
        TrainingLoop(tiny_model(), masked_only_loss, TrainConfig(steps=1, learning_rate=1e-3, precision="fp8"))


# --- checkpoints and losses that must not be trusted (bad input, round 3) -------------------------
@pytest.mark.parametrize(("change", "said"), [
    (lambda s: {**s, "model": {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                               for k, v in s["model"].items()}}, "its weights hold NaN or infinite values"),
    (lambda s: {k: v for k, v in s.items() if k != "scaler"}, "it lacks its scaler"),
    (lambda s: {**s, "model": dict(list(s["model"].items())[:-1])}, "its weights are not this model's"),
], ids=["NaN weights", "a part missing", "a weight missing"])
def test_a_checkpoint_that_matches_the_run_but_cannot_be_trusted_is_ignored_untouched(tmp_path, capsys, change, said):
    interrupted_run(tmp_path)
    path = tmp_path / CHECKPOINT
    torch.save(change(torch.load(path, weights_only=True)), path)
    trainer = TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path)
    before = parameters(trainer)
    assert not trainer.load_checkpoint()
    assert said in capsys.readouterr().out
    after = parameters(trainer)
    assert all(torch.equal(before[k], after[k]) for k in before), "nothing was loaded into the model"


def test_a_checkpoint_path_that_is_a_folder_or_a_pipe_or_a_checkpoint_folder_that_is_a_file(tmp_path):
    import os

    (tmp_path / "folder" / CHECKPOINT).mkdir(parents=True)
    with pytest.raises(ValueError, match="is not a regular file"):
        TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path / "folder").load_checkpoint()
    (tmp_path / "pipe").mkdir()
    os.mkfifo(tmp_path / "pipe" / CHECKPOINT)  # torch.load would wait for a writer forever
    with pytest.raises(ValueError, match="is not a regular file"):
        TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path / "pipe").load_checkpoint()
    (tmp_path / "a file").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="is a file, where training keeps its checkpoint folder"):
        TrainingLoop(tiny_model(), masked_only_loss, CONFIG, checkpoint_dir=tmp_path / "a file").load_checkpoint()


def test_a_nan_loss_stops_training_with_a_sentence():
    def nan_loss(model, batch):
        return masked_only_loss(model, batch) * float("nan")

    with pytest.raises(FloatingPointError, match=r"The loss is nan at step 1: .* Lower the learning rate"):
        TrainingLoop(tiny_model(), nan_loss, CONFIG).fit(loader_for)
