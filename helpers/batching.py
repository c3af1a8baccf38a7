"""Batches: group reviews of similar length, pad each batch to its longest review, collate.

Introduced in notebook 02; notebook 04 batches its training data with `training_batches`
(a `LengthGroupedBatchSampler` and `pad_batch`); notebook 03's blocks all have one length, and it
shuffles them with `random_batches`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

Batch = dict[str, torch.Tensor]


def random_batches(n_items: int, batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle item indices and cut them into batches (the usual DataLoader order)."""
    order = list(range(n_items))
    random.Random(seed).shuffle(order)
    return [order[i:i + batch_size] for i in range(0, n_items, batch_size)]


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group_batches: int = 50
) -> list[list[int]]:
    """Return shuffled batches whose items have similar lengths.

    Shuffle, cut into groups of `group_batches` batches, sort each group by length, cut it into
    batches, then shuffle the batches: neighbours in length share a batch, yet every epoch sees a
    different order and batches of all lengths are mixed through the epoch.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * group_batches
    batches = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start:start + group], key=lambda i: lengths[i], reverse=True)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]], pad_to: int | None = None) -> float:
    """Return real tokens / computed tokens when each batch is padded to its longest item (or `pad_to`)."""
    real = sum(lengths[i] for batch in batches for i in batch)
    computed = sum((pad_to or max(lengths[i] for i in batch)) * len(batch) for batch in batches)
    return real / computed


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """A DataLoader `batch_sampler` that yields length-grouped batches, reshuffled every epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, group_batches: int = 50) -> None:
        if not lengths:
            raise ValueError("Cannot batch an empty data set: it has no items.")
        self.lengths, self.batch_size, self.seed, self.group_batches = list(lengths), batch_size, seed, group_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle the next iteration uses (so a resumed run repeats it)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        yield from length_grouped_batches(self.lengths, self.batch_size, self.seed + self.epoch, self.group_batches)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, labels: Sequence[int] | None = None) -> Batch:
    """Pad id lists to the longest one: input_ids, attention_mask (and labels when given)."""
    if not rows:
        raise ValueError("No rows to pad: a batch needs at least one sequence.")
    longest = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, :len(row)] = torch.tensor(row)
        attention_mask[i, :len(row)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if labels is not None:
        batch["labels"] = torch.tensor(list(labels), dtype=torch.long)
    return batch


def training_batches(
    encoded: Sequence[Sequence[int]], labels: Sequence[int], batch_size: int, pad_id: int, seed: int
) -> Callable[[int], DataLoader]:
    """Return `epoch -> DataLoader` of length-grouped, dynamically padded batches, reshuffled per epoch."""
    if len(encoded) != len(labels):
        raise ValueError(f"{len(encoded)} encoded reviews but {len(labels)} labels.")
    rows = list(zip(encoded, labels))
    lengths = [len(ids) for ids in encoded]

    def for_epoch(epoch: int) -> DataLoader:
        sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=seed)
        sampler.set_epoch(epoch)
        return DataLoader(rows, batch_sampler=sampler,
                          collate_fn=lambda chunk: pad_batch([r[0] for r in chunk], pad_id, [r[1] for r in chunk]))

    return for_epoch
