"""Behaviour tests in the manner of CheckList (Ribeiro et al., 2020): sentences from templates, failure rates.

Introduced in notebook 07, which writes the templates. A model is any function from a list of
texts to P(positive) for each, so the transformer and the TF-IDF baseline take the same tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from helpers.stats import predicted_labels

Predict = Callable[[list[str]], np.ndarray]  # texts -> P(positive) of each
TEST_TYPES = {"label": "MFT", "invariance": "INV", "direction": "DIR"}  # CheckList's names for the three kinds


def with_typos(text: str, seed: int, words: int = 3) -> str:
    """Return the text with two neighbouring letters swapped inside `words` of its words of 4+ letters."""
    generator = np.random.default_rng(seed)
    parts = text.split(" ")
    candidates = [i for i, part in enumerate(parts) if len(part) >= 4 and part.isalpha()]
    for i in generator.choice(candidates, size=min(words, len(candidates)), replace=False):
        word = parts[i]
        j = int(generator.integers(1, len(word) - 2))  # inside the word: its first and last letters stay
        parts[i] = word[:j] + word[j + 1] + word[j] + word[j + 2:]
    return " ".join(parts)


def fill(template: str, **choices: Sequence[str]) -> list[str]:
    """Return the template filled with every combination of the choices: fill("{a} {b}", a=[...], b=[...])."""
    names = list(choices)
    return [template.format(**dict(zip(names, values))) for values in itertools.product(*choices.values())]


@dataclass(frozen=True)
class Check:
    """One behaviour test and its cases.

    kind "label" (a minimum functionality test, MFT): each case is (text, expected label); it fails
    when the prediction differs.
    kind "invariance" (INV): each case is a list of texts that must all get one label; it fails when they do not.
    kind "direction" (DIR): each case is (text, edited text), and the edit should lower P(positive);
    it fails when P(positive) rises by more than `tolerance` instead (0.1, as in Ribeiro et al.'s
    sentiment tests: a tie, or a move too small to mean anything, is not a failure).
    """

    name: str
    kind: str
    cases: list
    tolerance: float = 0.1

    @property
    def test_type(self) -> str:
        """Return CheckList's name for the kind of test: MFT, INV or DIR."""
        return TEST_TYPES[self.kind]

    def __post_init__(self) -> None:
        if self.kind not in ("label", "invariance", "direction"):
            raise ValueError(f"Unknown kind of check {self.kind!r}: use 'label', 'invariance' or 'direction'.")
        if not self.cases:
            raise ValueError(f"The check {self.name!r} has no cases.")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"A direction test's tolerance is a change of P(positive) in [0, 1), "
                             f"not {self.tolerance}.")


def failures(check: Check, predict: Predict) -> np.ndarray:
    """Return one boolean per case of the check: True where the model fails it."""
    if check.kind == "label":
        texts, expected = zip(*check.cases)
        return predicted_labels(predict(list(texts))) != np.asarray(expected)
    if check.kind == "invariance":
        flat = [text for group in check.cases for text in group]
        labels = predicted_labels(predict(flat)) == 1
        ends = np.cumsum([len(group) for group in check.cases])
        return np.array([len(set(part.tolist())) > 1 for part in np.split(labels, ends[:-1])])
    before, after = zip(*check.cases)
    return predict(list(after)) - predict(list(before)) > check.tolerance


def failure_counts(checks: Sequence[Check], models: dict[str, Predict]) -> dict[str, dict[str, int]]:
    """Return {check name: {model name: cases failed}} (each check has len(check.cases) cases)."""
    return {check.name: {name: int(failures(check, predict).sum()) for name, predict in models.items()}
            for check in checks}


def failure_rates(checks: Sequence[Check], models: dict[str, Predict]) -> dict[str, dict[str, float]]:
    """Return {check name: {model name: share of cases failed}}."""
    counts = failure_counts(checks, models)
    return {check.name: {name: failed / len(check.cases) for name, failed in counts[check.name].items()}
            for check in checks}
