"""Attention written out (notebook 01) vs PyTorch's fused scaled_dot_product_attention.

BERT-base's shape: 12 heads of 64 dimensions, one sequence, lengths doubling from 128. Time is
the median of alternating runs; memory is the peak of tensors alive at once during the call
(`helpers.measure.peak_tensor_bytes`), which sees the T x T score matrix the written-out version
keeps and the fused kernel never materialises.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchmarks.common import Result
from helpers.attention import attention
from helpers.measure import alternating_medians, peak_tensor_bytes

SIZES = {"full": {"lengths": [128, 256, 512, 1024, 2048, 4096], "repeats": 5},
         "smallest": {"lengths": [64, 128], "repeats": 1}}


def measure(length: int, device: str, repeats: int) -> dict[str, float]:
    """Return time (ms) and peak tensor memory (MB) of both versions at one sequence length, and their ratios."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 12, length, 64, device=device) for _ in range(3))
    versions = {"naive": lambda: attention(q, k, v)[0], "sdpa": lambda: F.scaled_dot_product_attention(q, k, v)}
    with torch.no_grad():
        assert torch.allclose(versions["naive"](), versions["sdpa"](), atol=1e-4), "they must compute the same"
        seconds = alternating_medians(versions, repeats=repeats)
    memory = {name: peak_tensor_bytes(fn) for name, fn in versions.items()}
    figures = {"time_ratio": round(seconds["naive"] / seconds["sdpa"], 2),
               "memory_ratio": round(memory["naive"] / memory["sdpa"], 2)}
    for name in versions:
        figures[f"{name}_ms"], figures[f"{name}_mb"] = round(seconds[name] * 1e3, 2), round(memory[name] / 1e6, 1)
    return figures


def run(size: str = "full", device: str = "cpu") -> Result:
    settings = SIZES[size]
    result = Result("attention", "Attention: written out vs `scaled_dot_product_attention`")
    per_length = {str(length): measure(length, device, settings["repeats"]) for length in settings["lengths"]}
    rows = [[length, r["naive_ms"], r["sdpa_ms"], f"{r['time_ratio']:.2f}x", r["naive_mb"], r["sdpa_mb"],
             f"{r['memory_ratio']:.1f}x"] for length, r in per_length.items()]
    result.lines.append(f"One sequence, 12 heads x 64 dimensions, float32, on `{device}`; medians of "
                        f"{settings['repeats']} alternating runs after a warm-up.\n")
    result.table(["tokens", "written out (ms)", "SDPA (ms)", "time ratio", "written out (MB)", "SDPA (MB)",
                  "memory ratio"], rows)
    result.figures["sdpa_vs_naive_attention"] = per_length
    result.plot = lambda axes: _plot(axes, per_length)
    return result


def _plot(axes, per_length: dict) -> None:
    lengths = [int(t) for t in per_length]
    left, right = axes
    for name, label in (("naive", "written out"), ("sdpa", "SDPA")):
        left.plot(lengths, [per_length[str(t)][f"{name}_ms"] for t in lengths], marker="o", label=label)
        right.plot(lengths, [per_length[str(t)][f"{name}_mb"] for t in lengths], marker="o", label=label)
    for ax, unit in ((left, "milliseconds"), (right, "peak tensor MB")):
        ax.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel=unit)
        ax.set_xticks(lengths, [str(t) for t in lengths])
        ax.legend()
