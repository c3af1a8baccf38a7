"""Notebook 04's classifier and both TF-IDF baselines on all 25,000 official test reviews.

Notebook 04 scores 5,000 of the official test reviews at the cpu profile (an interval of about
+-0.9 points). Here the classifier it saved (the base encoder's, in the work folder) and the two
TF-IDF baselines it fits (on the same 3,600 training reviews, and on all 25,000 training reviews
less the 400 validation ones) are scored on every test review: intervals of about +-0.4 points,
and a check that the 5,000 were not a lucky draw. The benchmark stops with a sentence when
notebook 04 has not run here.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import MissingNotebookModel, Result, paired_points
from helpers.baseline import full_train_baseline, tfidf_baseline
from helpers.classification import (
    encode,
    encode_read_whole,
    predict_probabilities,
    predict_probabilities_windowed,
    train_short_classifier,
)
from helpers.data import balanced_sample, load_reviews, validation_split
from helpers.models import classifier_dir, save_atomically
from helpers.profile import get_profile
from helpers.serving import load_classifier
from helpers.stats import accuracy_interval, disagreements, mcnemar_p, paired_difference, predicted_labels

SIZES = {"full": {"test_reviews": None, "fit_reviews": None, "full_train": None, "stand_in_steps": None},
         "smallest": {"test_reviews": 48, "fit_reviews": 64, "full_train": 400, "stand_in_steps": 2}}


def stand_in_classifier(profile, train, steps: int) -> Path:
    """Train a classifier for a few steps into a temporary folder: the smallest size runs without notebook 04."""
    folder = Path(tempfile.mkdtemp(prefix="stand-in-classifier-")) / "classifier"
    model, tokenizer = train_short_classifier(profile, train, max_length=profile.max_length, steps=steps)
    save_atomically(model, tokenizer, folder)
    return folder


def notebook_test_rows(test, profile) -> set[int]:
    """Return the positions in the official test split of the reviews notebook 04 scores (the profile's draw)."""
    numbered = test.add_column("row", list(range(len(test))))
    return set(balanced_sample(numbered, profile.test_reviews, profile.seed)["row"])


def committed_accuracy() -> float | None:
    """Return the test accuracy in the SUMMARY line of the committed notebook 04, if there is one."""
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "04_imdb_classification.ipynb"
    if not notebook.is_file():
        return None
    cells = [cell for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"]
    text = "".join("".join(output.get("text", "")) for output in cells[-1].get("outputs", []))
    lines = [line for line in text.splitlines() if line.startswith("SUMMARY ")]
    return json.loads(lines[-1].removeprefix("SUMMARY ")).get("accuracy") if lines else None


def notebook_classifier(profile, folder: Path | None, size: str) -> Path:
    """Return the folder of notebook 04's classifier; stop with a sentence if it is missing (but at the smallest
    size, whose caller trains a stand-in)."""
    folder = Path(folder or classifier_dir(profile))
    if not (folder / "model.safetensors").is_file() and size != "smallest":
        raise MissingNotebookModel(f"No classifier in {folder}: run notebook 04 first (make run), or set "
                                   "TUTORIAL_WORKDIR (or TUTORIAL_MODELS_DIR) to the folder that holds it.")
    return folder


def run(size: str = "full", folder: Path | None = None) -> Result:
    settings = SIZES[size]
    profile = get_profile("cpu")
    folder, origin, stand_in = notebook_classifier(profile, folder, size), "notebook 04's (in the work folder)", None
    splits = load_reviews(dataclasses.replace(profile, train_reviews=None, test_reviews=None))
    train = load_reviews(profile)["train"]  # the profile's 4,000: notebook 04's training and validation reviews
    fit, validation = validation_split(train, profile.validation_fraction, profile.seed)
    if settings["fit_reviews"]:
        fit = balanced_sample(fit, settings["fit_reviews"], profile.seed)
    if not (folder / "model.safetensors").is_file():  # the smallest size: exercise the code without notebook 04
        folder = stand_in = stand_in_classifier(profile, fit, settings["stand_in_steps"])
        origin = f"a stand-in trained for {settings['stand_in_steps']} steps: smallest size"
    notebook_rows = notebook_test_rows(splits["test"], profile)  # notebook 04's 5,000
    every = splits["test"].add_column("row", list(range(len(splits["test"]))))
    test = balanced_sample(every, settings["test_reviews"], profile.seed) if settings["test_reviews"] else every
    test_texts, test_labels = list(test["text"]), np.array(test["label"])
    in_notebook = np.array([row in notebook_rows for row in test["row"]])

    same, _ = tfidf_baseline(fit["text"], fit["label"], validation["text"], validation["label"])
    full_train = splits["train"]
    if settings["full_train"]:
        full_train = balanced_sample(full_train, settings["full_train"], profile.seed)
    full, full_train_size = full_train_baseline(full_train["text"], full_train["label"], validation["text"],
                                                validation["label"])  # notebook 04's anchor
    try:
        model, tokenizer = load_classifier(folder)  # scored with the fused kernel, as every helper scores
        probabilities = predict_probabilities(model, encode(tokenizer, test_texts, profile.max_length),
                                              tokenizer.pad_token_id, precision=profile.precision)
        # notebook 04's own reading of its test reviews (each read whole), to check it is that run's classifier
        windowed = encode_read_whole(tokenizer, [text for text, inside in zip(test_texts, in_notebook) if inside],
                                     profile.max_length) if in_notebook.any() else []
        read_whole = predict_probabilities_windowed(model, windowed, tokenizer.pad_token_id,
                                                    precision=profile.precision) if windowed else None
    finally:
        if stand_in is not None:
            shutil.rmtree(stand_in.parent, ignore_errors=True)
    right = {"classifier": predicted_labels(probabilities) == test_labels,
             f"TF-IDF, the same {len(fit):,} training reviews": same.predict(test_texts) == test_labels,
             f"TF-IDF, {full_train_size:,} training reviews": full.predict(test_texts) == test_labels}

    n, rows = len(test_labels), []
    for name, correct in right.items():
        accuracy = float(correct.mean())
        row = [name, f"{accuracy:.2%} +- {accuracy_interval(accuracy, n):.2%}",
               f"{correct[in_notebook].mean():.2%}" if in_notebook.any() else "",
               f"{correct[~in_notebook].mean():.2%}" if (~in_notebook).any() else ""]
        if name != "classifier":
            only_model, only_tfidf = disagreements(right["classifier"], correct)
            row += [paired_points(*paired_difference(right["classifier"], correct)),
                    f"{mcnemar_p(only_model, only_tfidf):.3g}"]
        else:
            row += ["", ""]
        rows.append(row)
    result = Result("full_test", "Notebook 04's classifier and both TF-IDF baselines on every official test review")
    result.lines += [
        f"Classifier: {origin}, {profile.max_length} tokens head+tail (one pass per review), {profile.precision}. "
        f"Scored on {n:,} official "
        f"test reviews; {int(in_notebook.sum()):,} of them are the {profile.test_reviews:,} notebook 04 scores, "
        f"and the other {int((~in_notebook).sum()):,} it never saw. Published on the same split: a bag of words "
        "with learnt word vectors 88.9 % (Maas et al. 2011), NBSVM with bigrams 91.2 % (Wang & Manning 2012), "
        "BERT-base at 512 tokens 94.6 % (Sun et al. 2019).", ""]
    result.table(["model", f"accuracy on all {n:,}", "on notebook 04's test reviews", "on the others",
                  "classifier minus it, points [95 % paired interval]", "McNemar p"], rows)
    names, committed = list(right), committed_accuracy()
    if committed is not None and read_whole is not None:
        whole_accuracy = float(np.mean(predicted_labels(read_whole) == test_labels[in_notebook]))
        result.lines += [f"Notebook 04's committed run printed {committed:.2%} on its {profile.test_reviews:,} test "
                         f"reviews, each read whole; the classifier scored here, on the same reviews read whole: "
                         f"{whole_accuracy:.2%} (equal when it is that run's classifier, or one trained the same way "
                         f"in the same precision); head+tail, as in the table: "
                         f"{right['classifier'][in_notebook].mean():.2%}.", ""]
    result.figures.update({
        "full_test_reviews": n,
        "full_test_classifier_accuracy": round(float(right[names[0]].mean()), 4),
        "full_test_tfidf_same_reviews_accuracy": round(float(right[names[1]].mean()), 4),
        "full_test_tfidf_full_train_accuracy": round(float(right[names[2]].mean()), 4),
    })
    return result
