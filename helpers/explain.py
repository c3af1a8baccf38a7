"""Which tokens made the classifier decide? Integrated gradients, attention received, deletion curves.

Introduced in notebook 06, which writes integrated gradients out in a few lines and checks them
against Captum before using `integrated_gradients` here on many reviews.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from helpers.classification import predict_probabilities
from helpers.stats import predicted_labels


def logit_margin(model: nn.Module, inputs_embeds: torch.Tensor) -> torch.Tensor:
    """Return logit(positive) - logit(negative) of each row of token vectors (B, T, d_model): what is explained."""
    logits = model(inputs_embeds=inputs_embeds).logits  # (B, 2)
    return logits[:, 1] - logits[:, 0]


def integrated_gradients(model: nn.Module, ids: Sequence[int], baseline_id: int, steps: int = 32,
                         chunk: int = 16) -> tuple[np.ndarray, float]:
    """Return each token's integrated gradient on the logit margin, and the margin's change baseline -> review.

    The path runs from the baseline (every token between [CLS] and [SEP] replaced by `baseline_id`)
    to the review's token vectors; the gradient is averaged at the midpoints of `steps` equal
    pieces of the path (a Riemann sum), `chunk` points per forward pass. By completeness the
    attributions add up to the change, up to the sum's error.
    """
    model.eval()
    embed = model.bert.embeddings.word_embeddings
    input_ids = torch.tensor([list(ids)], device=embed.weight.device)  # (1, T)
    baseline_ids = input_ids.clone()
    baseline_ids[0, 1:-1] = baseline_id
    with torch.no_grad():
        review, baseline = embed(input_ids), embed(baseline_ids)  # (1, T, d_model) each
        change = logit_margin(model, torch.cat([baseline, review]))  # (2,)
    gradient_sum = torch.zeros_like(review)
    for alphas in ((torch.arange(steps, device=review.device) + 0.5) / steps).split(chunk):
        path = (baseline + alphas.view(-1, 1, 1) * (review - baseline)).requires_grad_()  # (S, T, d_model)
        gradient_sum += torch.autograd.grad(logit_margin(model, path).sum(), path)[0].sum(dim=0, keepdim=True)
    attributions = ((review - baseline) * gradient_sum / steps).sum(dim=-1)[0]  # (T,): summed over d_model
    return attributions.cpu().numpy(), float(change[1] - change[0])


@torch.no_grad()
def attention_received(model: nn.Module, ids: Sequence[int]) -> np.ndarray:
    """Return the attention each token receives in the last layer, averaged over heads and query tokens.

    Needs the eager attention kernel (SDPA returns no weights): `model.set_attn_implementation("eager")`.
    """
    model.eval()
    device = model.bert.embeddings.word_embeddings.weight.device
    attentions = model(input_ids=torch.tensor([list(ids)], device=device), output_attentions=True).attentions
    if not attentions or attentions[-1] is None:
        raise ValueError("The model returned no attention weights: load it with attn_implementation='eager'.")
    return attentions[-1][0].float().mean(dim=(0, 1)).cpu().numpy()  # (H, T, T) -> (T,): mean over heads, queries


def ranking(scores: np.ndarray) -> np.ndarray:
    """Return the positions between [CLS] and [SEP], highest score first."""
    inner = np.asarray(scores)[1:-1]
    return np.argsort(-inner, kind="stable") + 1


def delete_positions(ids: Sequence[int], positions: Sequence[int]) -> list[int]:
    """Return the ids with the given positions removed (the review is shorter, not masked)."""
    removed = set(int(p) for p in positions)
    return [token for i, token in enumerate(ids) if i not in removed]


def deletion_drops(model: nn.Module, encoded: Sequence[Sequence[int]], rankings: Sequence[np.ndarray],
                   fractions: Sequence[float], pad_id: int, precision: str = "fp32") -> np.ndarray:
    """Return (fractions, reviews): the fall of each review's predicted-class probability when that share of
    its tokens, first in its ranking, is deleted (positive: the probability fell)."""
    if len(encoded) != len(rankings):
        raise ValueError(f"{len(encoded)} reviews but {len(rankings)} rankings: give one ranking per review.")
    before = predict_probabilities(model, encoded, pad_id, precision=precision)
    positive = predicted_labels(before) == 1
    drops = []
    for fraction in fractions:
        edited = [delete_positions(ids, order[:round(fraction * (len(ids) - 2))])
                  for ids, order in zip(encoded, rankings)]
        after = predict_probabilities(model, edited, pad_id, precision=precision)
        drops.append(np.where(positive, before - after, after - before))
    return np.array(drops)
