"""The classical yardstick: TF-IDF features of words and word pairs with a logistic regression.

Introduced in notebook 04; `benchmarks/seeds.py` scores it beside the transformer. Its
regularisation strength C is chosen on validation reviews carved out of the training reviews.
`full_train_baseline` is notebook 04's anchor (and `benchmarks/full_test.py`'s): the same baseline
fitted on every official training review but the validation ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)  # the choice (300 on the old sample) sits inside
FULL_TRAIN_GRID = (10.0, 30.0, 100.0)  # for full_train_baseline: each C is one fit on about 25,000 reviews


def tfidf_baseline(texts: Sequence[str], labels: Sequence[int], validation_texts: Sequence[str],
                   validation_labels: Sequence[int], grid: Sequence[float] = C_GRID) -> tuple[Pipeline, dict]:
    """Fit TF-IDF (1-2 grams) + logistic regression once per C; return the one best on the validation reviews.

    Also return the validation accuracy of every C, so that a reader can see whether the choice sits
    at an edge of the grid.
    """
    if not len(texts) or not len(validation_texts):
        raise ValueError("The TF-IDF baseline needs training and validation reviews: one of them is empty.")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    features = vectorizer.fit_transform(texts)
    validation_features = vectorizer.transform(validation_texts)
    scores, fitted = {}, {}
    for c in grid:
        fitted[c] = LogisticRegression(C=c, max_iter=2_000).fit(features, labels)
        scores[c] = float(np.mean(fitted[c].predict(validation_features) == np.asarray(validation_labels)))
    best = max(grid, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
    return Pipeline([("tfidf", vectorizer), ("logistic", fitted[best])]), scores


def full_train_baseline(texts: Sequence[str], labels: Sequence[int], validation_texts: Sequence[str],
                        validation_labels: Sequence[int]) -> tuple[Pipeline, int]:
    """Fit the baseline on the training reviews that are not validation reviews; return it and how many it used.

    A training review whose text is word for word a validation review's is left out too (the
    official split holds duplicates). C is chosen on the validation reviews from FULL_TRAIN_GRID.
    """
    held_out = set(validation_texts)
    kept = [(text, label) for text, label in zip(texts, labels) if text not in held_out]
    baseline, _ = tfidf_baseline([text for text, _ in kept], [label for _, label in kept], validation_texts,
                                 validation_labels, grid=FULL_TRAIN_GRID)
    return baseline, len(kept)
