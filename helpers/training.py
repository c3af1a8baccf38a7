"""The training loop of the series: AdamW, warm-up and decay, clipping, mixed precision, checkpoints.

Introduced in notebook 03, which writes the same loop out by hand first; notebook 04 trains its
classifier with it and notebook 06 runs it on several processes. Hugging Face Accelerate places
the model on the device and, when several processes train together, wraps it for PyTorch DDP
(gradients all-reduced). Mixed precision is done here, as in notebook 03's loop: autocast in bf16,
or fp16 with a GradScaler (Accelerate fixes one precision per process; a notebook may want two).

Each optimizer step receives one whole batch and splits it into `accumulation` micro-batches;
when a micro-batch runs out of memory the step is retried with twice as many, half as large, so
the optimizer still sees the same batch (on a single process: with several, each would back off
on its own and they would fall out of step, so it stops with the setting to use instead). Only the
latest checkpoint is kept, and it is removed when the run finishes (bert-base with AdamW's state
is about 1.3 GB: several would fill a 15 GB Google Drive; helpers.checkpoints writes, checks and
removes it). Before a step draws its batch the random generators are seeded from (seed, step):
masks and dropout are the same whether or not the run was resumed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, skip_first_batches
from torch import nn
from torch.utils.data import DataLoader

from helpers.batching import Batch
from helpers.checkpoints import load_checkpoint, model_identity, remove_checkpoint, save_checkpoint
from helpers.device import PRECISIONS, autocast, free_memory


@dataclass(frozen=True)
class TrainConfig:
    """The numbers that define a training run (a checkpoint resumes only a run with equal numbers)."""

    steps: int  # optimizer steps
    learning_rate: float  # peak learning rate, reached at the end of warm-up
    warmup_fraction: float = 0.06  # share of the steps spent raising the learning rate from 0
    weight_decay: float = 0.01  # AdamW decay, not applied to biases and LayerNorm weights
    max_grad_norm: float = 1.0  # gradients are rescaled to at most this global L2 norm
    precision: str = "fp32"  # "fp32", "bf16" (autocast) or "fp16" (autocast + loss scaling)
    accumulation: int = 1  # micro-batches per step; doubled automatically on out-of-memory
    seed: int = 0
    log_every: int = 10  # steps between history entries (and at every evaluation, and the last step)
    checkpoint_every: int = 0  # steps between checkpoints (0: never)
    eval_every: int = 0  # steps between calls of `evaluate` (0: only at the end)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.log_every < 1 or self.accumulation < 1:
            raise ValueError(f"TrainConfig needs steps, log_every and accumulation of at least 1 "
                             f"(got {self.steps}, {self.log_every}, {self.accumulation}).")
        if self.checkpoint_every < 0 or self.eval_every < 0:
            raise ValueError("checkpoint_every and eval_every are step counts: 0 (never) or more.")


def warmup_then_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """Return the learning-rate multiplier: linear from 0 to 1 over warm-up, then linear down to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def make_optimizer(model: nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """Return AdamW over the trainable parameters that decays weight matrices only, fused into one kernel.

    Fused on CUDA and on the CPU (PyTorch >= 2.4): the same update, one pass over all weights
    instead of a few small operations per tensor (notebook 05 measures what it buys).
    """
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.device.type in ("cuda", "cpu") for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused or None)


def split_batch(batch: Batch, parts: int) -> list[Batch]:
    """Cut a batch into `parts` micro-batches of (nearly) equal size along the first dimension."""
    rows = len(next(iter(batch.values())))
    bounds = [round(i * rows / parts) for i in range(parts + 1)]
    return [{k: v[a:b] for k, v in batch.items()} for a, b in zip(bounds, bounds[1:]) if b > a]


def step_seed(seed: int, step: int) -> int:
    """Return the seed of one step: a resumed run draws the same masks and dropout as an unbroken one."""
    return seed * 1_000_003 + step


def count_tokens(batch: Batch) -> int:
    """Return the real tokens of a batch: its attention mask's ones, else all input ids, else 0."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return batch["input_ids"].numel() if "input_ids" in batch else 0


def _batches_from(batches: Callable[[int], Iterable[Batch]], epoch: int, skip: int) -> Iterator[tuple[int, int, Batch]]:
    """Yield (epoch, index in epoch, batch) forever, starting `skip` batches into `epoch`.

    A DataLoader skips through its batch sampler, so the skipped batches are never collated
    (collation may draw random masks, which must not shift the random numbers of later steps).
    """
    while True:
        loader = batches(epoch)
        if skip and isinstance(loader, DataLoader):
            loader = skip_first_batches(loader, skip)
        elif skip:
            loader = itertools.islice(loader, skip, None)
        with torch.random.fork_rng(devices=[]):  # a DataLoader draws a seed when it starts: not from our RNG
            iterator = iter(loader)
        index = skip - 1
        for index, batch in enumerate(iterator, start=skip):
            yield epoch, index, batch
        if index < 0:
            raise ValueError("The training data yielded no batches: is the training split empty?")
        epoch, skip = epoch + 1, 0


class TrainingLoop:
    """Train `model` on `batches(epoch)` by minimising `loss_fn(model, batch)`, with checkpoints.

    A batch is a dict of tensors that share their first dimension (rows); any keys will do.
    Throughput counts tokens where the batch has an `attention_mask` (or `input_ids`), else rows only.
    A checkpoint (see helpers.checkpoints) is resumed only by a run with the same `config`, the same
    starting model (`model_identity`) and the same `identity`: pass what else determines the result,
    such as `{"data": data_fingerprint(token_ids, labels), "max_length": 512, "revision": ...}`.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[nn.Module, Batch], torch.Tensor],
        config: TrainConfig,
        checkpoint_dir: Path | None = None,
        accelerator: Accelerator | None = None,
        identity: dict | None = None,
    ) -> None:
        if config.precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {config.precision!r}: choose one of {', '.join(PRECISIONS)}.")
        self.accelerator = accelerator or Accelerator()
        self.config, self.loss_fn, self.checkpoint_dir = config, loss_fn, checkpoint_dir
        self.model = self.accelerator.prepare_model(model)  # on the device; DDP-wrapped on several processes
        device_type = self.accelerator.device.type
        self.scaler = torch.amp.GradScaler(device_type, enabled=config.precision == "fp16")
        self.optimizer = make_optimizer(model, config.learning_rate, config.weight_decay)
        warmup = max(1, round(config.warmup_fraction * config.steps))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: warmup_then_decay(step, warmup, config.steps)
        )
        self.step, self.epoch, self.batch_index, self.accumulation = 0, 0, 0, config.accumulation
        self.history: list[dict] = []
        identity = {"config": dataclasses.asdict(config), "model": model_identity(model), **(identity or {})}
        self.fingerprint = json.loads(json.dumps(identity, default=str))  # as it reads back from a checkpoint

    # --- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write model, optimizer, schedule, loss scale and position in the data in one atomic file."""
        if self.checkpoint_dir is None or not self.accelerator.is_main_process:
            return
        state = {
            "fingerprint": self.fingerprint,
            "position": (self.step, self.epoch, self.batch_index, self.accumulation),
            "model": self.accelerator.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
        }
        save_checkpoint(self.checkpoint_dir, state)

    def load_checkpoint(self) -> bool:
        """Resume from the checkpoint of an equal run if one exists; return whether it did."""
        if self.checkpoint_dir is None:
            return False
        model = self.accelerator.unwrap_model(self.model)
        state = load_checkpoint(self.checkpoint_dir, self.fingerprint, model)
        if state is None:
            return False
        model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_index, self.accumulation = state["position"]
        self.history = state["history"]
        return True

    # --- one optimizer step ------------------------------------------------------------------
    def _local_share(self, batch: Batch) -> Batch:
        """Return this process's rows of the global batch (all of them on a single process)."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        if world == 1:
            return batch
        rows = len(next(iter(batch.values())))
        if rows < world:
            raise ValueError(f"A batch of {rows} rows cannot be shared by {world} processes: use larger batches.")
        return split_batch(batch, world)[rank]

    def _accumulate(self, batch: Batch) -> float:
        """Add the gradient of the batch, one micro-batch at a time; return the batch's mean loss."""
        world = self.accelerator.num_processes
        rows = len(next(iter(batch.values())))  # of the global batch, over all processes
        total = 0.0
        micro_batches = split_batch(self._local_share(batch), self.accumulation)
        for i, micro in enumerate(micro_batches):
            micro = {k: v.to(self.accelerator.device) for k, v in micro.items()}
            # DDP averages the processes' gradients; this weight makes the average the global batch's mean
            weight = len(next(iter(micro.values()))) * world / rows
            last = i == len(micro_batches) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.model):
                with autocast(self.accelerator.device, self.config.precision):
                    loss = self.loss_fn(self.model, micro)
                self.scaler.scale(loss * weight).backward()  # scale() is the identity unless fp16
            total += loss.item() * weight
        if world > 1:  # report the loss of the whole batch, not of this process's rows
            total = self.accelerator.reduce(torch.tensor(total, device=self.accelerator.device), "mean").item()
        return total

    def train_step(self, batch: Batch) -> float:
        """Run one optimizer step on `batch`, halving the micro-batches on out-of-memory; return the loss."""
        while True:
            try:
                loss = self._accumulate(batch)
            except torch.OutOfMemoryError:
                loss = None  # leave the except block first: its traceback still holds the failed graph
            if loss is not None:
                break
            self._back_off(len(next(iter(batch.values()))))
        if not math.isfinite(loss):  # every later step would be NaN too: stop, and keep the last good checkpoint
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(f"The loss is {loss} at step {self.step + 1}: the weights or the learning rate "
                                     f"({self.config.learning_rate:g}) have diverged. Lower the learning rate, or "
                                     "use fp32 (TUTORIAL_PRECISION=fp32), and train again.")
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self._optimizer_step()
        self.scaler.update()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def _back_off(self, rows: int) -> None:
        """After an out-of-memory error, free the failed step and double the micro-batches (or say what to change)."""
        if self.accelerator.num_processes > 1:  # the others would wait for gradients that never come
            raise torch.OutOfMemoryError(
                f"Out of memory at step {self.step} on process {self.accelerator.process_index}: with several "
                f"processes the back-off is off (they must stay in step); restart with "
                f"accumulation={self.accumulation * 2} in TrainConfig."
            )
        self.optimizer.zero_grad(set_to_none=True)
        free_memory()
        if self.accumulation >= rows:
            raise torch.OutOfMemoryError(
                "Out of memory even with one sequence per micro-batch: use shorter sequences "
                "(a smaller max_length) or a smaller model."
            )
        self.accumulation *= 2
        print(f"Out of memory at step {self.step}: retrying with {self.accumulation} micro-batches per step.")

    def _optimizer_step(self) -> None:
        """Apply the gradients; AdamW creates its state (2 tensors per weight) on the first step, which may not fit."""
        for _ in range(2):
            try:
                self.scaler.step(self.optimizer)  # skipped if fp16 gradients overflowed
                return
            except torch.OutOfMemoryError:
                pass
            free_memory()  # outside the except block, then one more try
        raise torch.OutOfMemoryError(
            f"Out of memory in the optimizer step at step {self.step}: weights, gradients and AdamW's two "
            "moments need about 4x the model's size. Free other models first (del model; gc.collect(); "
            "torch.cuda.empty_cache()) or use a smaller model."
        )

    # --- checkpoints of a finished run --------------------------------------------------------
    def remove_checkpoint(self) -> int:
        """Delete this run's checkpoint (and a half-written one); return the bytes freed."""
        if self.checkpoint_dir is None or not self.accelerator.is_main_process:
            return 0
        return remove_checkpoint(self.checkpoint_dir)

    # --- the loop ----------------------------------------------------------------------------
    def fit(
        self,
        batches: Callable[[int], Iterable[Batch]],
        evaluate: Callable[[nn.Module], dict] | None = None,
        on_log: Callable[[list[dict]], None] | None = None,
    ) -> list[dict]:
        """Train until `config.steps`, resuming from a checkpoint; return the history of logged steps."""
        config = self.config
        if self.load_checkpoint():
            print(f"Resumed from the checkpoint at step {self.step} of {config.steps}.")
        data = _batches_from(batches, self.epoch, self.batch_index)
        window: list[float] = []
        started, seen, tokens = time.perf_counter(), 0, 0  # throughput since this call began
        evaluating = 0.0  # seconds spent in `evaluate`, left out of the training time
        elapsed_before = self.history[-1]["seconds"] if self.history else 0.0
        self.model.train()
        while self.step < config.steps:
            torch.manual_seed(step_seed(config.seed, self.step))
            self.epoch, index, batch = next(data)
            if self.accelerator.num_processes > 1:  # every process drew the same batch; dropout differs
                torch.manual_seed(step_seed(config.seed, self.step) * self.accelerator.num_processes
                                  + self.accelerator.process_index)
            window.append(self.train_step(batch))
            self.step, self.batch_index = self.step + 1, index + 1
            seen += len(next(iter(batch.values())))
            tokens += count_tokens(batch)
            done = self.step == config.steps
            evaluating_now = evaluate is not None and (
                done or (config.eval_every > 0 and self.step % config.eval_every == 0))
            if self.step % config.log_every == 0 or done or evaluating_now:
                seconds = time.perf_counter() - started - evaluating
                entry = {
                    "step": self.step,
                    "epoch": self.epoch,
                    "loss": sum(window) / len(window),
                    "learning_rate": self.schedule.get_last_lr()[0],
                    "seconds": elapsed_before + seconds,  # training only, evaluation excluded
                    "samples_per_second": seen / seconds,
                    "tokens_per_second": tokens / seconds if tokens else None,
                }
                if evaluating_now:
                    self.model.eval()
                    before = time.perf_counter()
                    entry.update(evaluate(self.accelerator.unwrap_model(self.model)))
                    evaluating += time.perf_counter() - before
                    self.model.train()
                self.history.append(entry)
                window = []
                if on_log is not None and self.accelerator.is_main_process:
                    on_log(self.history)
            if config.checkpoint_every and self.step % config.checkpoint_every == 0 and not done:
                self.save_checkpoint()
        freed = self.remove_checkpoint()  # only the latest is ever kept, and none once the run is finished
        if freed:
            print(f"Finished: removed the checkpoint ({freed / 1e6:,.0f} MB).")
        self.model.eval()
        return self.history

