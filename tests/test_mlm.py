"""Masked-language-model helpers: blocks, the masked-only loss, the fixed evaluation mask, fill-mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import StubTokenizer, notebook_definitions, tiny_model
from transformers import AutoTokenizer, DataCollatorForLanguageModeling

from helpers.mlm import (
    fill_mask,
    fixed_eval_batches,
    full_vocabulary_loss,
    group_into_blocks,
    masked_only_loss,
    mean_masked_loss,
)
from helpers.models import minilm_path


def test_blocks_have_the_block_size_and_keep_every_token_in_order():
    texts = [[10, 11, 12], [20, 21], [30, 31, 32, 33], [40]]
    blocks = group_into_blocks(texts, block_size=5, cls_id=1, sep_id=2)
    # the stream 10 11 12 2 20 21 2 30 31 32 33 2 40 2 in bodies of 3; the short tail (40 2) is dropped
    assert blocks == [[1, 10, 11, 12, 2], [1, 2, 20, 21, 2], [1, 2, 30, 31, 2], [1, 32, 33, 2, 2]]
    assert all(len(b) == 5 for b in blocks)
    with pytest.raises(ValueError, match="no room"):
        group_into_blocks(texts, block_size=2, cls_id=1, sep_id=2)


def test_the_notebook_blocks_are_the_helper_blocks():
    from_notebook = notebook_definitions("03_mlm_finetuning.ipynb", ["group_into_blocks"])["group_into_blocks"]
    texts = torch.randint(5, 100, (30,)).split([1, 7, 3, 9, 10])
    texts = [t.tolist() for t in texts]
    for block_size in (3, 4, 8, 16):
        assert from_notebook(texts, block_size, 1, 2) == group_into_blocks(texts, block_size, 1, 2)


def test_masked_only_loss_equals_the_full_vocabulary_loss():
    model = tiny_model().eval()
    collate = DataCollatorForLanguageModeling(StubTokenizer(), mlm_probability=0.3)
    batch = fixed_eval_batches(torch.randint(4, 50, (6, 16)).tolist(), collate, batch_size=6, seed=0)[0]
    torch.testing.assert_close(masked_only_loss(model, batch), full_vocabulary_loss(model, batch))


def test_fixed_eval_mask_is_the_same_every_time_and_leaves_the_global_generator_alone():
    collate = DataCollatorForLanguageModeling(StubTokenizer(), mlm_probability=0.15)
    blocks = torch.randint(4, 50, (10, 16), generator=torch.Generator().manual_seed(0)).tolist()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = fixed_eval_batches(blocks, collate, batch_size=4, seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    second = fixed_eval_batches(blocks, collate, batch_size=4, seed=7)
    assert [len(b["labels"]) for b in first] == [4, 4, 2]
    assert all(torch.equal(a["labels"], b["labels"]) for a, b in zip(first, second))
    assert mean_masked_loss(tiny_model(), first) == mean_masked_loss(tiny_model(), second)


def test_fill_mask_wants_one_mask_per_prompt():
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = tiny_model()
    model.resize_token_embeddings(len(tokenizer))
    assert [len(row) for row in fill_mask(model, tokenizer, ["a [MASK] film.", "[MASK] acting"], k=3)] == [3, 3]
    with pytest.raises(ValueError, match="exactly one"):
        fill_mask(model, tokenizer, ["no mask here"])


def test_masked_top1_accuracy_counts_only_masked_positions():
    from helpers.mlm import masked_top1_accuracy

    batch = {"input_ids": torch.tensor([[1, 5, 6, 7, 2]]), "labels": torch.tensor([[-100, 5, -100, 7, -100]])}
    model = tiny_model().eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0]
    expected = float(np.mean([logits[1].argmax() == 5, logits[3].argmax() == 7]))
    assert masked_top1_accuracy(model, [batch]) == expected
    with torch.no_grad():  # a bias that always names token 5: right at position 1, wrong at 3
        model.cls.predictions.bias.fill_(-1e4)
        model.cls.predictions.bias[5] = 1e4
    assert masked_top1_accuracy(model, [batch]) == 0.5
