"""What every benchmark shares: alternating timing, goals, and writing a Markdown table atomically."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch


def alternating_medians(candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Return each candidate's median seconds, running them in turns so that noise hits all alike.

    Round 1..warmup are discarded (caches, lazy initialisation, the allocator growing).
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            started = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


@dataclass(frozen=True)
class Goal:
    """A target a measured figure should reach on the 2-core reference machine."""

    key: str
    minimum: float | None = None
    maximum: float | None = None

    def met(self, value: float) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)

    def describe(self) -> str:
        return " and ".join(part for part in (f">= {self.minimum:g}" if self.minimum is not None else "",
                                              f"<= {self.maximum:g}" if self.maximum is not None else "") if part)


@dataclass
class Result:
    """One benchmark's output: its Markdown report, its summary figures and the goals they answer."""

    name: str
    title: str
    lines: list[str] = field(default_factory=list)  # Markdown body
    figures: dict[str, object] = field(default_factory=dict)  # merged into summary.json
    goals: list[Goal] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # why a goal was missed, by key
    plot: Callable[[tuple], None] | None = None  # draws on two side-by-side axes when set

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        self.lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        self.lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
        self.lines.append("")

    def goal_lines(self) -> list[str]:
        lines = []
        for goal in self.goals:
            value = self.figures[goal.key]
            verdict = "met" if goal.met(value) else f"missed. {self.reasons.get(goal.key, '')}".strip()
            lines.append(f"- `{goal.key}` = {value:g}, goal {goal.describe()}: **{verdict}**")
        return lines


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write to a temporary file next to `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.replace(partial, path)


def save_figure(figure, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    write_atomically(path, buffer.getvalue())


def encoded_training_reviews(reviews: int | None, max_length: int) -> tuple[object, list[list[int]], list[int]]:
    """Return (tokenizer, head+tail token ids, labels) of the cpu profile's training reviews (the first `reviews`)."""
    from transformers import AutoTokenizer

    from helpers.classification import encode
    from helpers.data import load_reviews
    from helpers.models import load_pretrained
    from helpers.profile import get_profile

    profile = get_profile("cpu")
    tokenizer = load_pretrained(AutoTokenizer, profile)
    train = load_reviews(profile)["train"]
    if reviews:
        train = train.select(range(reviews))
    return tokenizer, encode(tokenizer, train["text"], max_length), list(train["label"])
