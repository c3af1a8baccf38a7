"""Does 90 % confident mean 90 % right? Reliability bins, expected calibration error, temperature scaling.

Introduced in notebook 07. A binary classifier's confidence is the probability of the label it
predicts, so it lies between 0.5 and 1; the bins split that range.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit

from helpers.stats import predicted_labels


def reliability_bins(probability: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Return, per confidence bin of equal width over [0.5, 1]: reviews, mean confidence and accuracy (NaN if empty)."""
    probability, labels = np.asarray(probability, dtype=float), np.asarray(labels)
    if probability.shape != labels.shape or not len(labels):
        raise ValueError(f"Need one probability per label, at least one (got {probability.shape} and {labels.shape}).")
    confidence = np.maximum(probability, 1 - probability)
    correct = predicted_labels(probability) == (labels == 1)
    which = np.minimum(((confidence - 0.5) * 2 * bins).astype(int), bins - 1)  # confidence 1.0 in the last bin
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=bins) / counts
        accuracy = np.bincount(which, correct.astype(float), minlength=bins) / counts
    return {"count": counts, "confidence": mean_confidence, "accuracy": accuracy,
            "edges": np.linspace(0.5, 1.0, bins + 1)}


def expected_calibration_error(probability: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Return the gap |accuracy - confidence| of each bin, averaged with the bins' shares of the reviews."""
    found = reliability_bins(probability, labels, bins)
    used = found["count"] > 0
    gaps = np.abs(found["accuracy"][used] - found["confidence"][used])
    return float(np.sum(gaps * found["count"][used]) / found["count"].sum())


def negative_log_likelihood(margins: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Return the mean cross-entropy of P(positive) = sigmoid(margin / temperature) against the labels."""
    signed = np.where(np.asarray(labels) == 1, 1.0, -1.0) * np.asarray(margins, dtype=float) / temperature
    return float(-np.mean(log_expit(signed)))


def fit_temperature(margins: np.ndarray, labels: np.ndarray) -> float:
    """Return the temperature (0.05 to 20) that minimises the cross-entropy of the logit margins on these reviews.

    Dividing every margin by one number never changes which label is predicted, only how sure.
    """
    if len(margins) != len(labels) or len(set(np.asarray(labels).tolist())) < 2:
        raise ValueError("Fit the temperature on reviews of both classes, one margin per label.")
    found = minimize_scalar(lambda log_t: negative_log_likelihood(margins, labels, float(np.exp(log_t))),
                            bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def scaled_probability(margins: np.ndarray, temperature: float) -> np.ndarray:
    """Return P(positive) after dividing the logit margins by the temperature."""
    return expit(np.asarray(margins, dtype=float) / temperature)
