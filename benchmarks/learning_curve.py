"""A learning curve: notebook 04's cpu recipe and TF-IDF trained on more and more official training reviews.

At each size a stratified, seeded subset of the official `train` split is drawn (the 4,000 of the
`cpu` profile, and so notebook 04's own reviews, at 4,000); 10 % of it is held out as validation
reviews, on which TF-IDF chooses C, as in notebook 04. The transformer (the base encoder, one seed)
and TF-IDF learn from the other 90 % and are scored on the same official test reviews (the cpu
profile's 5,000). TF-IDF, cheap to fit, also runs at sizes the transformer's 2-core budget does not
reach. Where the transformer passes the baseline, if it does in the range measured, is the answer.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from benchmarks.common import Result, paired_points
from helpers.baseline import tfidf_baseline
from helpers.classification import encode, fine_tune, new_classifier, predict_probabilities
from helpers.data import balanced_sample, load_reviews, validation_split
from helpers.models import model_name
from helpers.profile import get_profile
from helpers.stats import accuracy_interval, disagreements, mcnemar_p, paired_difference, predicted_labels

SIZES = {"full": {"transformer": (1_000, 2_000, 4_000, 8_000), "tfidf_only": (16_000, 25_000),
                  "test_reviews": None, "steps": None},
         "smallest": {"transformer": (48, 96), "tfidf_only": (192,), "test_reviews": 32, "steps": 2}}


def draw(full_train, size: int, profile):
    """Return (training, validation) reviews of a stratified, seeded subset of `size` official training reviews."""
    return validation_split(balanced_sample(full_train, size, profile.seed), profile.validation_fraction, profile.seed)


def run(size: str = "full") -> Result:
    from transformers import AutoTokenizer

    from helpers.models import load_pretrained

    settings = SIZES[size]
    profile = get_profile("cpu")
    full_train = load_reviews(dataclasses.replace(profile, train_reviews=None))["train"]
    test = load_reviews(profile)["test"]
    test = balanced_sample(test, settings["test_reviews"] or len(test), profile.seed)
    test_labels = np.array(test["label"])
    tokenizer = load_pretrained(AutoTokenizer, profile)
    encoded_test = encode(tokenizer, test["text"], profile.max_length)

    rows = []
    for reviews in (*settings["transformer"], *settings["tfidf_only"]):
        fit, validation = draw(full_train, reviews, profile)
        baseline, _ = tfidf_baseline(fit["text"], fit["label"], validation["text"], validation["label"])
        row = {"reviews": reviews, "fit": len(fit), "tfidf_right": baseline.predict(test["text"]) == test_labels,
               "tfidf_c": baseline.named_steps["logistic"].C}
        if reviews in settings["transformer"]:
            model = new_classifier(profile, "base", seed=profile.seed)
            started = time.perf_counter()
            model, _ = fine_tune(model, encode(tokenizer, fit["text"], profile.max_length), fit["label"],
                                 tokenizer.pad_token_id, profile, steps=settings["steps"])
            row["seconds"] = time.perf_counter() - started
            probabilities = predict_probabilities(model, encoded_test, tokenizer.pad_token_id,
                                                  precision=profile.precision)
            row["model_right"] = predicted_labels(probabilities) == test_labels
            del model
        rows.append(row)
        print(f"  {reviews:,} reviews: TF-IDF {row['tfidf_right'].mean():.1%}"
              + (f", transformer {row['model_right'].mean():.1%} ({row['seconds']:.0f} s)" if "seconds" in row else ""),
              flush=True)

    n = len(test_labels)
    table = []
    for row in rows:
        tfidf = float(row["tfidf_right"].mean())
        cells = [f"{row['reviews']:,}", f"{row['fit']:,}", f"{tfidf:.1%} +- {accuracy_interval(tfidf, n):.1%}",
                 f"{row['tfidf_c']:g}"]
        if "model_right" in row:
            model = float(row["model_right"].mean())
            only_model, only_tfidf = disagreements(row["model_right"], row["tfidf_right"])
            cells += [f"{model:.1%} +- {accuracy_interval(model, n):.1%}",
                      paired_points(*paired_difference(row["model_right"], row["tfidf_right"])),
                      f"{mcnemar_p(only_model, only_tfidf):.3g}", f"{row['seconds']:.0f}"]
        else:
            cells += ["", "", "", ""]
        table.append(cells)

    trained = [row for row in rows if "model_right" in row]
    lower_ends = [np.subtract(*paired_difference(row["model_right"], row["tfidf_right"])) for row in trained]
    ahead = [row["reviews"] for row, lower in zip(trained, lower_ends) if lower > 0]
    ahead_from = next((row["reviews"] for i, row in enumerate(trained) if min(lower_ends[i:]) > 0), None)
    result = Result("learning_curve", "Learning curve: notebook 04's cpu recipe and TF-IDF by training reviews")
    result.lines += [
        f"Each size: a stratified, seeded (seed {profile.seed}) subset of the official training split, "
        f"{profile.validation_fraction:.0%} of it held out for validation (TF-IDF's C is chosen there), the rest "
        f"learnt from. Every model is scored on the same {n:,} official test reviews. The transformer: "
        f"{model_label(profile)}, one seed per size; the spread over seeds at 4,000 reviews is in `seeds.md`. "
        "The subsets of different sizes are drawn independently, not nested.", ""]
    result.table(["reviews drawn", "learnt from", "TF-IDF", "TF-IDF C", "transformer",
                  "transformer - TF-IDF, points [95 % paired interval]", "McNemar p", "training s"], table)
    result.lines += [
        (f"The transformer is ahead of TF-IDF, with the paired interval above zero, at every size from "
         f"{ahead_from:,} reviews drawn up." if ahead_from else
         f"Sizes where the transformer is ahead with the paired interval above zero: "
         f"{', '.join(f'{r:,}' for r in ahead) or 'none'}; at no size is it ahead from there on."), ""]
    result.figures.update({
        "learning_curve_reviews": [row["reviews"] for row in rows],
        "learning_curve_tfidf_accuracy": [round(float(row["tfidf_right"].mean()), 4) for row in rows],
        "learning_curve_transformer_accuracy": [round(float(row["model_right"].mean()), 4) for row in trained],
        "learning_curve_train_seconds": [round(row["seconds"], 1) for row in trained],
        "learning_curve_transformer_ahead_from": ahead_from,
        "learning_curve_test_reviews": n,
    })

    def plot(axes):
        import matplotlib.ticker

        left, right = axes
        sizes = [row["fit"] for row in rows]
        tfidf = [row["tfidf_right"].mean() * 100 for row in rows]
        left.errorbar(sizes, tfidf, yerr=[accuracy_interval(t / 100, n) * 100 for t in tfidf], marker="o",
                      capsize=3, label="TF-IDF + logistic regression")
        model = [row["model_right"].mean() * 100 for row in trained]
        left.errorbar([row["fit"] for row in trained], model, marker="s", capsize=3,
                      label=f"{model_name(profile)} (notebook 04's recipe)",
                      yerr=[accuracy_interval(m / 100, n) * 100 for m in model])
        left.set(xscale="log", xlabel="training reviews learnt from (log scale)",
                 ylabel="test accuracy, % (95 % interval)", title=f"Accuracy on the same {n:,} test reviews")
        left.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
        left.legend(fontsize=8, loc="lower right")
        right.plot([row["fit"] for row in trained], [row["seconds"] for row in trained], marker="s")
        right.axhline(300, color="grey", linestyle="--", label="notebook 04's budget: 300 s")
        right.set(xlabel="training reviews learnt from", ylabel="training seconds (2 cores)",
                  title="What each size costs to train", ylim=(0, None))
        right.legend(fontsize=8)

    result.plot = plot
    return result


def model_label(profile) -> str:
    """Name the transformer and its recipe in a few words."""
    return (f"{model_name(profile)}, {profile.max_length} tokens head+tail, {profile.epochs} epoch(s), batch "
            f"{profile.batch_size}, lr {profile.learning_rate:g}, {profile.precision}")
