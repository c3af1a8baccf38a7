"""How notebook 04's cpu recipe is chosen: candidate settings scored on validation reviews only.

The levers, within the rule that training takes at most 300 s on 2 cores: how many tokens of each
review the model reads while it learns, how many training reviews it learns from (fewer tokens buy
more reviews, or a second epoch, in the same time), and how a review longer than the window is read
when it is scored: head+tail (the first quarter and last three quarters of the window, as in
training) or cut into windows that cover it all, their logits averaged (more passes per long review).
Every candidate trains one run (seed 0) from the base encoder and is scored on the same validation
reviews: official training reviews that no candidate learns from. The test reviews are not touched
here: choosing on them would fit the choice to them. An earlier run of this benchmark, on 400
validation reviews of an older sample, scored 384 and 512 tokens (239 and 322 s) and lr 2e-4 below
256 tokens at lr 1e-4; they are not run again.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from benchmarks.common import Result
from helpers.classification import (
    encode,
    encode_read_whole,
    fine_tune,
    new_classifier,
    predict_probabilities,
    predict_probabilities_windowed,
    probability_scores,
)
from helpers.data import balanced_sample, load_reviews, validation_split
from helpers.profile import get_profile
from helpers.stats import accuracy_interval

CANDIDATES = {  # name: (training reviews, the settings that differ from the stock cpu profile's fields)
    "256 tokens, 3,600 reviews, 1 epoch": (3_600, {"max_length": 256, "epochs": 1, "attention_kernel": "eager"}),
    "128 tokens, 7,200 reviews, 1 epoch": (7_200, {"max_length": 128, "epochs": 1, "attention_kernel": "eager"}),
    "128 tokens, 3,600 reviews, 2 epochs": (3_600, {"max_length": 128, "epochs": 2, "attention_kernel": "eager"}),
    "384 tokens, 2,400 reviews, 1 epoch": (2_400, {"max_length": 384, "epochs": 1, "attention_kernel": "sdpa"}),
}
READINGS = ("head+tail", "windows averaged")
TIME_BUDGET = 300  # seconds of training on the 2-core reference machine
SIZES = {"full": {"drawn": 10_000, "validation": 0.2, "scale": 1, "steps": None, "candidates": list(CANDIDATES)},
         "smallest": {"drawn": 96, "validation": 0.5, "scale": 0.01, "steps": 2, "candidates": list(CANDIDATES)[:2]}}


def run(size: str = "full") -> Result:
    from transformers import AutoTokenizer

    from helpers.models import load_pretrained

    settings = SIZES[size]
    profile = get_profile("cpu")
    full_train = load_reviews(dataclasses.replace(profile, train_reviews=None))["train"]
    pool, validation = validation_split(balanced_sample(full_train, settings["drawn"], profile.seed),
                                        settings["validation"], profile.seed)
    tokenizer = load_pretrained(AutoTokenizer, profile)
    labels = np.array(validation["label"])
    rows, figures = [], {}
    for name in settings["candidates"]:
        reviews, changes = CANDIDATES[name]
        candidate = dataclasses.replace(profile, **changes)
        fit = balanced_sample(pool, max(8, round(reviews * settings["scale"])), profile.seed)
        started = time.perf_counter()
        model, _ = fine_tune(new_classifier(candidate), encode(tokenizer, fit["text"], candidate.max_length),
                             fit["label"], tokenizer.pad_token_id, candidate, steps=settings["steps"])
        seconds = time.perf_counter() - started
        scored = {
            "head+tail": predict_probabilities(model, encode(tokenizer, validation["text"], candidate.max_length),
                                               tokenizer.pad_token_id, precision=candidate.precision),
            "windows averaged": predict_probabilities_windowed(
                model, encode_read_whole(tokenizer, validation["text"], candidate.max_length),
                tokenizer.pad_token_id, precision=candidate.precision),
        }
        for reading in READINGS:
            scores = probability_scores(scored[reading], labels)
            key = f"{name}, {reading}"
            rows.append([key, f"{len(fit):,}", f"{scores['validation_loss']:.3f}", f"{scores['accuracy']:.1%}",
                         f"{seconds:.0f}"])
            figures[key] = {"training_reviews": len(fit), "validation_loss": round(scores["validation_loss"], 4),
                            "validation_accuracy": round(scores["accuracy"], 4), "train_seconds": round(seconds, 1)}
            print(f"  {key}: validation loss {scores['validation_loss']:.3f}, accuracy {scores['accuracy']:.1%}, "
                  f"{seconds:.0f} s", flush=True)
        del model
    windows = encode_read_whole(tokenizer, validation["text"], profile.max_length)
    long_share = float(np.mean([len(review) > 1 for review in windows]))

    result = Result("recipe", "Choosing notebook 04's cpu recipe on validation reviews")
    result.lines += [f"{len(validation):,} validation reviews (official training reviews; no candidate learns from "
                     f"them, the test reviews are not used), the training reviews drawn from {len(pool):,} others. "
                     f"One run each (seed 0), from the base encoder; every candidate: batch {profile.batch_size}, "
                     f"lr {profile.learning_rate:g}, {profile.precision}, no dropout, token embeddings frozen. "
                     f"A validation accuracy on {len(validation):,} reviews is uncertain by about +-"
                     f"{accuracy_interval(0.9, len(validation)):.1%}; {long_share:.0%} of these reviews are longer "
                     f"than {profile.max_length} tokens (read as more than one window).", ""]
    result.table(["candidate, reading of long reviews", "training reviews", "validation loss",
                  "validation accuracy", "training s"], rows)
    within = {key: f for key, f in figures.items() if f["train_seconds"] <= TIME_BUDGET}
    best = min(within or figures, key=lambda key: (within or figures)[key]["validation_loss"])
    result.lines += [f"The rule, written before these runs: the lowest validation loss (the mean cross-entropy, less "
                     f"noisy than the accuracy) among the candidates that train in at most {TIME_BUDGET} s. It "
                     f"picks: **{best}**.", ""]
    result.figures["recipe_candidates"] = figures
    result.figures["recipe_choice"] = best
    result.figures["recipe_validation_reviews"] = len(validation)
    return result
