"""Which tokens made the classifier decide? Integrated gradients, gradient x input, attention, deletion curves.

Introduced in notebook 07, which writes integrated gradients out in a few lines and checks them
against Captum before using `integrated_gradients` here on many reviews; notebook 04 colours its
most confidently wrong reviews with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from helpers.classification import predict_probabilities
from helpers.device import autocast
from helpers.models import attention_kernel
from helpers.stats import predicted_labels


def logit_margin(model: nn.Module, inputs_embeds: torch.Tensor) -> torch.Tensor:
    """Return logit(positive) - logit(negative) of each row of token vectors (B, T, d_model): what is explained."""
    logits = model(inputs_embeds=inputs_embeds).logits  # (B, 2)
    return logits[:, 1] - logits[:, 0]


def integrated_gradients(model: nn.Module, ids: Sequence[int], baseline_id: int, steps: int = 32,
                         chunk: int = 16, precision: str = "fp32") -> tuple[np.ndarray, float]:
    """Return each token's integrated gradient on the logit margin, and the margin's change baseline -> review.

    The path runs from the baseline (every token between [CLS] and [SEP] replaced by `baseline_id`)
    to the review's token vectors; the gradient is averaged at the midpoints of `steps` equal
    pieces of the path (a Riemann sum), `chunk` points per forward pass. By completeness the
    attributions add up to the change, up to the sum's error, and to the rounding of a lower `precision` (bf16
    or fp16 autocast: faster, and enough to rank tokens, notebook 07; fp16's gradients, unscaled, lose
    their smallest parts). Check completeness in fp32.
    """
    model.eval()
    embed = model.bert.embeddings.word_embeddings
    input_ids = torch.tensor([list(ids)], device=embed.weight.device)  # (1, T)
    baseline_ids = input_ids.clone()
    baseline_ids[0, 1:-1] = baseline_id
    with torch.no_grad():
        review, baseline = embed(input_ids), embed(baseline_ids)  # (1, T, d_model) each
        with autocast(review.device, precision):
            change = logit_margin(model, torch.cat([baseline, review])).float()  # (2,)
    gradient_sum = torch.zeros_like(review)
    for alphas in ((torch.arange(steps, device=review.device) + 0.5) / steps).split(chunk):
        path = (baseline + alphas.view(-1, 1, 1) * (review - baseline)).requires_grad_()  # (S, T, d_model)
        with autocast(review.device, precision):
            margin = logit_margin(model, path).sum()
        gradient_sum += torch.autograd.grad(margin, path)[0].sum(dim=0, keepdim=True)
    attributions = ((review - baseline) * gradient_sum / steps).sum(dim=-1)[0]  # (T,): summed over d_model
    return attributions.cpu().numpy(), float(change[1] - change[0])


def gradient_x_input(model: nn.Module, ids: Sequence[int]) -> np.ndarray:
    """Return each token's gradient x input on the logit margin: one backward pass (on BERT no better than random,
    notebook 07's deletion test)."""
    model.eval()
    embed = model.bert.embeddings.word_embeddings
    vectors = embed(torch.tensor([list(ids)], device=embed.weight.device)).detach().requires_grad_()  # (1, T, d)
    gradient = torch.autograd.grad(logit_margin(model, vectors).sum(), vectors)[0]
    return (gradient * vectors).sum(dim=-1)[0].detach().float().cpu().numpy()


@torch.no_grad()
def attention_maps(model: nn.Module, ids: Sequence[int]) -> torch.Tensor:
    """Return every layer's attention weights for one review, averaged over heads: (layers, T, T), rows sum to 1.

    Computed with the written-out (eager) kernel, the only one that returns the weights.
    """
    model.eval()
    device = model.bert.embeddings.word_embeddings.weight.device
    with attention_kernel(model, "eager"):
        attentions = model(input_ids=torch.tensor([list(ids)], device=device), output_attentions=True).attentions
    if not attentions or attentions[-1] is None:
        raise ValueError("The model returned no attention weights: load it with attn_implementation='eager'.")
    return torch.stack([layer[0].float().mean(dim=0) for layer in attentions]).cpu()  # each (H, T, T) -> (T, T)


def attention_received(model: nn.Module, ids: Sequence[int], maps: torch.Tensor | None = None) -> np.ndarray:
    """Return the attention each token receives in the last layer, averaged over heads and query tokens.

    `maps`: the review's `attention_maps`, when already computed.
    """
    maps = attention_maps(model, ids) if maps is None else maps
    return maps[-1].mean(dim=0).numpy()  # (T, T) -> (T,): mean over the queries


def attention_rollout(model: nn.Module, ids: Sequence[int], maps: torch.Tensor | None = None) -> np.ndarray:
    """Return the attention each token receives rolled out over all layers, averaged over query tokens.

    Abnar & Zuidema (2020): each layer's head-averaged weights are mixed half and half with the
    identity (the residual connection passes each token on), and the layers' matrices multiplied,
    first layer rightmost, so that row i says how much of token i's final vector came from each input token.
    `maps`: the review's `attention_maps`, when already computed.
    """
    maps = attention_maps(model, ids) if maps is None else maps
    identity = torch.eye(maps.shape[-1])
    rolled = identity
    for layer in maps:
        rolled = (0.5 * layer + 0.5 * identity) @ rolled
    return rolled.mean(dim=0).numpy()


def ranking(scores: np.ndarray) -> np.ndarray:
    """Return the positions between [CLS] and [SEP], highest score first."""
    inner = np.asarray(scores)[1:-1]
    return np.argsort(-inner, kind="stable") + 1


def delete_positions(ids: Sequence[int], positions: Sequence[int]) -> list[int]:
    """Return the ids with the given positions removed (the review is shorter, not masked)."""
    removed = set(int(p) for p in positions)
    return [token for i, token in enumerate(ids) if i not in removed]


def deletion_drops(model: nn.Module, encoded: Sequence[Sequence[int]], rankings: Sequence[np.ndarray],
                   fractions: Sequence[float], pad_id: int, precision: str = "fp32",
                   before: np.ndarray | None = None) -> np.ndarray:
    """Return (fractions, reviews): the fall of each review's predicted-class probability when that share of
    its tokens, first in its ranking, is deleted (positive: the probability fell).

    `before`: P(positive) of the unedited reviews at this precision, when already computed (several rankings).
    """
    if len(encoded) != len(rankings):
        raise ValueError(f"{len(encoded)} reviews but {len(rankings)} rankings: give one ranking per review.")
    if before is None:
        before = predict_probabilities(model, encoded, pad_id, precision=precision)
    elif len(before) != len(encoded):
        raise ValueError(f"{len(encoded)} reviews but {len(before)} probabilities in `before`: give one per review.")
    positive = predicted_labels(before) == 1
    drops = []
    for fraction in fractions:
        edited = [delete_positions(ids, order[:round(fraction * (len(ids) - 2))])
                  for ids, order in zip(encoded, rankings)]
        after = predict_probabilities(model, edited, pad_id, precision=precision)
        drops.append(np.where(positive, before - after, after - before))
    return np.array(drops)
