"""Group reviews of similar length into the same batch, so that little compute is spent on padding.

Introduced in notebook 02; notebooks 03 and 04 batch their training data with
`LengthGroupedBatchSampler`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


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
