"""Notebook 07's student over seeds: the teacher's lowest layers (Patient KD) or one of every two (DistilBERT).

Notebook 07 distils notebook 04's classifier into a student of half its layers that starts from
the teacher's lowest layers, and says DistilBERT (Sanh et al., 2019) took one layer of every two
instead. Here both starts are distilled with notebook 07's recipe (temperature 2, half soft
targets, one epoch over the teacher's 3,600 training reviews), once per seed, and scored on
notebook 04's 5,000 test reviews. A seed draws the order of the batches; the start is a copy.
The benchmark stops with a sentence when notebook 04 has not run here.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Result, notebook_04_reviews
from benchmarks.full_test import notebook_classifier, stand_in_classifier
from helpers.classification import encode, fine_tune, predict_probabilities
from helpers.distillation import distillation_loss, student_from_teacher
from helpers.profile import get_profile
from helpers.serving import load_classifier
from helpers.stats import disagreements, mcnemar_p, over_seeds, predicted_labels

SIZES = {"full": {"seeds": (0, 1, 2), "fit_reviews": None, "test_reviews": None, "steps": None},
         "smallest": {"seeds": (0, 1), "fit_reviews": 64, "test_reviews": 32, "steps": 2}}


def starts(layers: int) -> dict[str, tuple[int, ...]]:
    """Return the two starts compared, as the teacher's layers each student takes: lowest, and one of every two."""
    return {"lowest layers": tuple(range(layers // 2)), "every other layer": tuple(range(0, layers, 2))}


def run(size: str = "full", folder: Path | None = None) -> Result:
    settings = SIZES[size]
    profile = get_profile("cpu")
    folder, origin, stand_in = notebook_classifier(profile, folder, size), "notebook 04's (in the work folder)", None
    fit, _, test = notebook_04_reviews(profile, settings["fit_reviews"], settings["test_reviews"])
    if not (folder / "model.safetensors").is_file():  # the smallest size: exercise the code without notebook 04
        folder = stand_in = stand_in_classifier(profile, fit, settings["steps"])
        origin = f"a stand-in trained for {settings['steps']} steps: smallest size"
    test_labels = np.array(test["label"])
    try:
        teacher, tokenizer = load_classifier(folder)
    finally:
        if stand_in is not None:
            shutil.rmtree(stand_in.parent, ignore_errors=True)  # made for this run only
    teacher.set_attn_implementation(profile.attention_kernel)
    pad_id = tokenizer.pad_token_id
    encoded_fit = encode(tokenizer, fit["text"], profile.max_length)
    encoded_test = encode(tokenizer, test["text"], profile.max_length)
    layers = teacher.config.num_hidden_layers
    teacher_right = predicted_labels(predict_probabilities(teacher, encoded_test, pad_id,
                                                           precision=profile.precision)) == test_labels

    runs = []
    for seed in settings["seeds"]:
        for name, keep in starts(layers).items():
            student = student_from_teacher(teacher, layers=layers // 2, keep=keep)
            student.bert.embeddings.word_embeddings.requires_grad_(not profile.freeze_word_embeddings)
            started = time.perf_counter()
            student, _ = fine_tune(student, encoded_fit, fit["label"], pad_id, profile, seed=seed,
                                   steps=settings["steps"], loss=distillation_loss(teacher, 2.0, 0.5))
            seconds = time.perf_counter() - started
            right = predicted_labels(predict_probabilities(student, encoded_test, pad_id,
                                                           precision=profile.precision)) == test_labels
            runs.append({"seed": seed, "start": name, "accuracy": float(right.mean()), "right": right,
                         "seconds": seconds})
            print(f"  seed {seed}, {name}: {right.mean():.1%} in {seconds:.0f} s", flush=True)

    names = list(starts(layers))
    by_start = {name: [r for r in runs if r["start"] == name] for name in names}
    summary = over_seeds([r["accuracy"] for r in by_start[names[0]]], [r["accuracy"] for r in by_start[names[1]]])
    length = f"{settings['steps']} steps" if settings["steps"] else "one epoch"
    result = Result("students", f"Notebook 07's student over {len(settings['seeds'])} seeds: which teacher layers "
                                "to start from")
    result.lines += [
        f"Teacher: {origin}, {layers} layers, {teacher_right.mean():.1%} on these {len(test):,} test reviews. "
        f"Students of {layers // 2} layers start from the teacher's "
        f"{', '.join(f'{n} {starts(layers)[n]}' for n in names)}, "
        f"embeddings and head; distilled (temperature 2, half soft targets) for {length} over {len(fit):,} "
        f"training reviews with the cpu profile's recipe ({profile.max_length} tokens, batch {profile.batch_size}, "
        f"lr {profile.learning_rate:g}, {profile.precision}). A seed draws the batch order.", ""]
    rows = []
    for seed in settings["seeds"]:
        a, b = (next(r for r in by_start[n] if r["seed"] == seed) for n in names)
        only_a, only_b = disagreements(a["right"], b["right"])
        rows.append([seed, f"{a['accuracy']:.1%}", f"{b['accuracy']:.1%}", f"{only_a} / {only_b}",
                     f"{mcnemar_p(only_a, only_b):.3g}", f"{a['seconds']:.0f} / {b['seconds']:.0f}"])
    result.table(["seed", names[0], names[1], "only the first right / only the second", "McNemar p",
                  "training s"], rows)
    low, high = summary["interval"]
    result.lines += [
        f"Mean: {names[0]} {summary['mean_a']:.2%} (std {summary['std_a'] * 100:.2f} points), {names[1]} "
        f"{summary['mean_b']:.2%} (std {summary['std_b'] * 100:.2f}); difference "
        f"{summary['mean_difference'] * 100:+.2f} points, 95 % interval {low * 100:+.2f} to {high * 100:+.2f} "
        "(Student's t over the seeds), paired t-test "
        f"p = {summary['paired_t_p']:.3f}; {names[0]} ahead in {summary['a_wins']} of {summary['n']} seeds.", ""]
    result.figures.update({
        "student_seeds": list(settings["seeds"]), "student_test_reviews": len(test),
        "student_lowest_accuracy_by_seed": [round(r["accuracy"], 4) for r in by_start[names[0]]],
        "student_every_other_accuracy_by_seed": [round(r["accuracy"], 4) for r in by_start[names[1]]],
        "student_lowest_minus_every_other_points": round(summary["mean_difference"] * 100, 2),
        "student_lowest_minus_every_other_interval_points": [round(low * 100, 2), round(high * 100, 2)],
        "student_starts_paired_t_p": round(summary["paired_t_p"], 4),
    })
    return result
