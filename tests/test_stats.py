"""Intervals, McNemar, summaries over seeds, the TF-IDF baseline and the validation split (notebook 04)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import notebook_definitions
from datasets import Dataset

from helpers.baseline import C_GRID, tfidf_baseline
from helpers.data import validation_split
from helpers.stats import accuracy_interval, disagreements, mcnemar_p, over_seeds, paired_difference


def test_mcnemar_matches_the_binomial_tail_and_the_notebooks_version():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 2**10)  # all ten discordant reviews on one side
    assert mcnemar_p(64, 55) == mcnemar_p(55, 64)
    notebook = notebook_definitions("04_imdb_classification.ipynb", ["mcnemar_p", "interval"])
    for a, b in [(64, 55), (3, 17), (40, 12)]:
        assert notebook["mcnemar_p"](a, b) == pytest.approx(mcnemar_p(a, b))
    assert notebook["interval"](0.88, 1000) == pytest.approx(accuracy_interval(0.88, 1000))
    assert accuracy_interval(0.5, 1000) == pytest.approx(1.96 * math.sqrt(0.25 / 1000))


def test_disagreements_count_each_side():
    right_a = np.array([True, True, False, False, True])
    right_b = np.array([True, False, True, False, False])
    assert disagreements(right_a, right_b) == (2, 1)


def test_over_seeds_pairs_the_runs_and_reports_a_wide_interval_for_three_seeds():
    summary = over_seeds([0.90, 0.89, 0.91], [0.88, 0.88, 0.89])
    assert summary["mean_difference"] == pytest.approx(0.0167, abs=1e-4)
    assert summary["a_wins"] == 3 and summary["n"] == 3
    low, high = summary["interval"]
    assert low < summary["mean_difference"] < high
    assert 0 < summary["paired_t_p"] < 0.05  # differences 0.02, 0.01, 0.02: consistent
    noisy = over_seeds([0.90, 0.87, 0.91], [0.88, 0.89, 0.89])
    assert noisy["paired_t_p"] > 0.5 and noisy["interval"][0] < 0 < noisy["interval"][1]
    constant = over_seeds([0.9, 0.9], [0.88, 0.88])  # no spread: a t-test is undefined, the verdict is not
    assert constant["paired_t_p"] == 0.0 and constant["interval"] == pytest.approx((0.02, 0.02))
    with pytest.raises(ValueError, match="same seeds on both sides"):
        over_seeds([0.9, 0.8], [0.9])


def test_validation_split_is_stratified_disjoint_and_refuses_impossible_shares(reviews_frame):
    train = Dataset.from_pandas(reviews_frame)
    fit, held = validation_split(train, 0.2, seed=0)
    assert (len(fit), len(held)) == (16, 4)
    assert sum(held["label"]) == 2, "both classes in the validation split"
    assert not set(fit["text"]) & set(held["text"])
    assert validation_split(train, 0.2, seed=0)[1]["text"] == held["text"], "the same split every run"
    for fraction in (0, 1, 1.5):
        with pytest.raises(ValueError, match="validation fraction"):
            validation_split(train, fraction, seed=0)


def test_tfidf_baseline_picks_c_on_the_validation_reviews():
    positive = ["a wonderful moving film", "great acting and a great story", "loved it, wonderful", "superb film"]
    negative = ["a dull boring film", "awful acting and a dull story", "hated it, boring", "terrible film"]
    texts, labels = positive * 5 + negative * 5, [1] * 20 + [0] * 20
    model, scores = tfidf_baseline(texts, labels, ["wonderful great story", "boring awful film"], [1, 0])
    assert set(scores) == set(C_GRID) and model.named_steps["logistic"].C in C_GRID
    assert scores[model.named_steps["logistic"].C] == max(scores.values())
    assert list(model.predict(["a wonderful film", "a boring film"])) == [1, 0]
    with pytest.raises(ValueError, match="one of them is empty"):
        tfidf_baseline(texts, labels, [], [])


def test_a_paired_difference_is_narrowed_by_the_items_both_models_agree_on():
    a = np.array([1] * 60 + [0] * 40, dtype=bool)  # 60 % right
    b = np.array([1] * 45 + [0] * 15 + [1] * 5 + [0] * 35, dtype=bool)  # 50 %: 15 items only a, 5 only b
    mean, half = paired_difference(a, b)
    assert mean == pytest.approx(0.10)
    d = np.r_[np.zeros(45), np.ones(15), -np.ones(5), np.zeros(35)]  # the per-item differences
    assert half == pytest.approx(1.96 * d.std(ddof=1) / 10)
    assert half < accuracy_interval(0.6, 100) + accuracy_interval(0.5, 100), "pairing beats two separate intervals"
    assert paired_difference(a, a) == (0.0, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference(a[:1], b[:1])
