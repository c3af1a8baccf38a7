"""Intervals, McNemar, summaries over seeds, the TF-IDF baseline and the validation split (notebook 04)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import notebook_definitions
from datasets import Dataset

from helpers.baseline import C_GRID, tfidf_baseline
from helpers.data import validation_split
from helpers.stats import (
    accuracy_interval,
    bootstrap_interval,
    disagreements,
    mcnemar_p,
    over_seeds,
    paired_difference,
    wilson_interval,
)


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


def test_wilson_interval_stays_sound_at_the_ends_and_matches_the_published_values():
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)  # Newcombe (1998), 0 of 20
    low, high = wilson_interval(10, 20)
    assert (low, high) == pytest.approx((0.2993, 0.7007), abs=1e-4) and low + high == pytest.approx(1.0)
    assert wilson_interval(20, 20)[1] == 1.0
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_bootstrap_interval_resamples_rows_together_and_brackets_the_statistic():
    values = np.arange(200, dtype=float)
    low, high = bootstrap_interval(np.mean, values, seed=0)
    # the normal interval's width, within the Monte-Carlo error of 1,000 resamples (a few per cent; 20 % allowed)
    assert low < values.mean() < high and high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(200), rel=0.2)
    # two identical columns resampled together: their difference is 0 in every resample
    assert bootstrap_interval(lambda a, b: float(np.mean(a - b)), values, values.copy()) == (0.0, 0.0)
    assert bootstrap_interval(np.mean, values, seed=1) == bootstrap_interval(np.mean, values, seed=1)
    with pytest.raises(ValueError, match="one length"):
        bootstrap_interval(lambda a, b: 0.0, values, values[:10])
