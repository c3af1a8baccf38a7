"""Masked-language-model fine-tuning: blocks of text, the masked-only loss, perplexity, fill-mask.

Introduced in notebook 03, which derives each function in its own cells first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from helpers.batching import Batch


def group_into_blocks(token_ids: Sequence[Sequence[int]], block_size: int, cls_id: int, sep_id: int) -> list[list[int]]:
    """Concatenate tokenized texts ([SEP] after each) and cut them into `[CLS] ... [SEP]` blocks.

    Every block holds exactly `block_size` tokens; the incomplete tail is dropped. Call it once per
    split, so no block mixes held-out and training reviews.
    """
    if block_size < 3:
        raise ValueError(f"block_size={block_size} leaves no room for text between [CLS] and [SEP].")
    stream = [token for ids in token_ids for token in [*ids, sep_id]]
    body = block_size - 2
    return [[cls_id, *stream[i:i + body], sep_id] for i in range(0, len(stream) - body + 1, body)]


def logits_at(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
              where: torch.Tensor) -> torch.Tensor:
    """Run a BertForMaskedLM's encoder and project only the positions `where` (B, T) holds onto the vocabulary.

    Returns (n_chosen, vocab) logits instead of the (B, T, vocab) the model's own forward computes.
    """
    hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return model.cls(hidden[where])


def masked_only_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Return the MLM loss of a BertForMaskedLM, projecting only the masked positions onto the vocabulary."""
    chosen = batch["labels"] != -100  # (B, T): the ~15 % of positions that carry a label
    logits = logits_at(model, batch["input_ids"], batch.get("attention_mask"), chosen)
    return F.cross_entropy(logits.float(), batch["labels"][chosen])


def full_vocabulary_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Return the MLM loss as BertForMaskedLM computes it: logits at every position, loss on the masked."""
    return model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"), labels=batch["labels"]).loss


def fixed_eval_batches(
    blocks: Sequence[Sequence[int]], collate: Callable[[list[dict]], Batch], batch_size: int, seed: int
) -> list[Batch]:
    """Mask held-out blocks once with a seeded generator, so perplexity is the same number on every run."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        starts = range(0, len(blocks), batch_size)
        return [collate([{"input_ids": list(b)} for b in blocks[i:i + batch_size]]) for i in starts]
    finally:
        torch.random.set_rng_state(state)


@torch.no_grad()
def mean_masked_loss(model: nn.Module, batches: Sequence[Batch], device: torch.device | str = "cpu") -> float:
    """Return the loss averaged over every masked token of `batches` (not over batches)."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        n = int((batch["labels"] != -100).sum())
        total += masked_only_loss(model, batch).item() * n
        count += n
    return total / count


def perplexity(model: nn.Module, batches: Sequence[Batch], device: torch.device | str = "cpu") -> float:
    """Return exp(mean masked loss): as unsure as a uniform choice among that many tokens."""
    return math.exp(mean_masked_loss(model, batches, device))


@torch.no_grad()
def fill_mask(model: nn.Module, tokenizer, prompts: Sequence[str], k: int = 5) -> list[list[str]]:
    """Return the top-k tokens the model predicts for the single [MASK] of each prompt."""
    model.eval()
    device = next(model.parameters()).device
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True).to(device)
    where = encoded["input_ids"] == tokenizer.mask_token_id
    if (where.sum(dim=1) != 1).any():
        raise ValueError(f"Each prompt needs exactly one {tokenizer.mask_token}.")
    top = logits_at(model, encoded["input_ids"], encoded["attention_mask"], where).topk(k, dim=-1).indices
    return [tokenizer.convert_ids_to_tokens(row) for row in top.tolist()]


@torch.no_grad()
def masked_top1_accuracy(model: nn.Module, batches: Sequence[Batch], device: torch.device | str = "cpu") -> float:
    """Return the share of masked tokens of `batches` whose most likely token is the right one."""
    model.eval()
    right, count = 0, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        chosen = batch["labels"] != -100
        logits = logits_at(model, batch["input_ids"], batch.get("attention_mask"), chosen)
        right += int((logits.argmax(dim=-1) == batch["labels"][chosen]).sum())
        count += int(chosen.sum())
    return right / count
