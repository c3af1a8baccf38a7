"""Scaled dot-product attention and multi-head attention, written out as in notebook 01.

Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V. Masks follow PyTorch's boolean convention:
True marks a (query, key) pair that may attend, False one that is blocked. One addition to the
notebook's three lines: a query whose keys are all blocked gets weights 0 (and output 0), as in
PyTorch's SDPA, instead of the softmax's 0/0 = NaN, which would spread through every later layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the attention output and weights for q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v)."""
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # (..., T_q, T_k), each row sums to 1
    if mask is not None:  # a fully blocked row is NaN after the softmax: make it 0, as SDPA does
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights @ v, weights  # (..., T_q, d_v)


def padding_mask(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Return a (B, 1, 1, T) mask that lets every query see only the real (non-pad) keys."""
    positions = torch.arange(seq_len, device=lengths.device)  # (T,)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T)


def causal_mask(seq_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Return a (T, T) mask that lets position i see positions 0..i only."""
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


class MultiHeadAttention(nn.Module):
    """Self-attention with `n_heads` heads: project, split heads, attend, concatenate, project."""

    def __init__(self, d_model: int, n_heads: int, bias: bool = True) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}.")
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape (B, T, d_model) into (B, n_heads, T, d_head)."""
        batch, seq_len, _ = x.shape
        return x.view(batch, seq_len, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the output (B, T, d_model) and the weights (B, n_heads, T, T) for input x (B, T, d_model)."""
        batch, seq_len, d_model = x.shape
        q = self.split_heads(self.q_proj(x))  # (B, H, T, d_head)
        k = self.split_heads(self.k_proj(x))  # (B, H, T, d_head)
        v = self.split_heads(self.v_proj(x))  # (B, H, T, d_head)
        context, weights = attention(q, k, v, mask)  # (B, H, T, d_head), (B, H, T, T)
        context = context.transpose(1, 2).reshape(batch, seq_len, d_model)  # (B, T, d_model)
        return self.out_proj(context), weights
