import pytest
import torch
from torch.utils.data import DataLoader

from helpers.batching import LengthGroupedBatchSampler, length_grouped_batches, padding_efficiency, random_batches


def test_grouped_batches_cover_every_item_once_and_are_reproducible():
    lengths = [(i * 37) % 500 + 1 for i in range(1000)]
    batches = length_grouped_batches(lengths, batch_size=16, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == length_grouped_batches(lengths, batch_size=16, seed=3)
    assert batches != length_grouped_batches(lengths, batch_size=16, seed=4)


def test_grouping_raises_padding_efficiency():
    lengths = [(i * 37) % 500 + 1 for i in range(1000)]
    random_eff = padding_efficiency(lengths, random_batches(1000, 16, seed=0))
    grouped_eff = padding_efficiency(lengths, length_grouped_batches(lengths, 16, seed=0))
    assert grouped_eff > 0.95 > 0.7 > random_eff


def test_padding_efficiency_by_hand():
    assert padding_efficiency([2, 4, 4, 4], [[0, 1], [2, 3]]) == 14 / 16
    assert padding_efficiency([2, 4], [[0, 1]], pad_to=8) == 6 / 16


def test_sampler_reshuffles_per_epoch_and_feeds_a_dataloader():
    lengths = list(range(1, 101))
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and len(sampler) == 13
    loader = DataLoader(torch.arange(100), batch_sampler=sampler)
    assert sorted(torch.cat(list(loader)).tolist()) == list(range(100))


def test_empty_data_set_is_a_clear_error():
    with pytest.raises(ValueError, match="Cannot batch an empty data set"):
        LengthGroupedBatchSampler([], batch_size=8)
