"""What every benchmark shares: its setup (the cpu profile's reviews), batch picking, goals, atomic output.

Timing is `helpers.measure.alternating_medians`, the function notebook 03 uses too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from helpers.files import atomic_path


class MissingNotebookModel(FileNotFoundError):
    """A benchmark measures a model a notebook saves (03's encoder, 04's classifier), and it is not there."""


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


def paired_points(difference: float, half_width: float) -> str:
    """Format a paired difference of accuracies and its 95 % interval in points: "+1.4 [+0.4, +2.4]"."""
    return f"{difference * 100:+.1f} [{(difference - half_width) * 100:+.1f}, {(difference + half_width) * 100:+.1f}]"


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write text or bytes to `path` atomically (helpers.files)."""
    with atomic_path(path) as partial:
        partial.write_bytes(text if isinstance(text, bytes) else text.encode())


def save_figure(figure, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    write_atomically(path, buffer.getvalue())


@dataclass
class TrainingReviews:
    """The cpu profile's training reviews, encoded head+tail as notebook 04 encodes them."""

    profile: object
    tokenizer: object
    encoded: list[list[int]]
    labels: list[int]

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.encoded]

    def batch(self, rows: list[int]) -> dict:
        """Return the padded training batch of the reviews at `rows`."""
        from helpers.batching import pad_batch

        return pad_batch([self.encoded[i] for i in rows], self.tokenizer.pad_token_id, [self.labels[i] for i in rows])


def notebook_04_reviews(profile, fit_reviews: int | None = None, test_reviews: int | None = None):
    """Return (fit, validation, test) as notebook 04 splits the profile's reviews.

    `fit_reviews` and `test_reviews` take stratified, seeded samples of the training (less the
    validation split) and test reviews; None keeps them all.
    """
    from helpers.data import balanced_sample, load_reviews, validation_split

    splits = load_reviews(profile)
    fit, validation = validation_split(splits["train"], profile.validation_fraction, profile.seed)
    if fit_reviews:
        fit = balanced_sample(fit, fit_reviews, profile.seed)
    test = balanced_sample(splits["test"], test_reviews or len(splits["test"]), profile.seed)
    return fit, validation, test


def training_reviews(reviews: int | None, max_length: int) -> TrainingReviews:
    """Load the cpu profile's training reviews (a stratified sample of `reviews`, or all) at `max_length` tokens."""
    from transformers import AutoTokenizer

    from helpers.classification import encode
    from helpers.data import balanced_sample, load_reviews
    from helpers.models import load_pretrained
    from helpers.profile import get_profile

    profile = get_profile("cpu")
    tokenizer = load_pretrained(AutoTokenizer, profile)
    train = load_reviews(profile)["train"]
    if reviews:
        train = balanced_sample(train, reviews, profile.seed)
    return TrainingReviews(profile, tokenizer, encode(tokenizer, train["text"], max_length), list(train["label"]))


def representative(batches: list[list[int]], lengths: list[int], count: int,
                   pad_to: int | None = None) -> list[list[int]]:
    """Pick `count` full batches at evenly spaced quantiles of their padded length: they stand for the epoch."""
    padded = sorted(batches, key=lambda b: pad_to or max(lengths[i] for i in b))
    largest = max(len(b) for b in padded)
    full = [b for b in padded if len(b) == largest]
    return [full[int((k + 0.5) * len(full) / count)] for k in range(count)]


def timed_train_steps(trainer, batches: list[dict]) -> tuple[float, int]:
    """Run one optimizer step per batch after a warm-up step; return (seconds, computed tokens) of the timed ones."""
    trainer.train_step(batches[0])  # warm-up: lazy initialisation, AdamW's state, the allocator growing
    seconds, tokens = 0.0, 0
    for batch in batches:
        started = time.perf_counter()
        trainer.train_step(batch)
        seconds += time.perf_counter() - started
        tokens += batch["input_ids"].numel()
    return seconds, tokens
