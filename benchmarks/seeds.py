"""Seeds, not anecdotes: notebook 04's cpu recipe from the base and the adapted encoder, beside TF-IDF.

The recipe (`helpers.classification.fine_tune` with the cpu profile) is trained from the base
all-MiniLM-L6-v2 and from notebook 03's adapted encoder, once per seed. A seed draws the new
head's weights and the order of the batches; the reviews stay the same: the training reviews less
a stratified validation split, and the profile's official test reviews (5,000 at the cpu profile), on
which every model is scored. The
TF-IDF baseline (C chosen on the validation reviews) is deterministic: one fit serves every seed.
The report gives each run, the mean and spread over seeds, a paired t-test over seeds and, per
seed, McNemar's test against the baseline on the same test reviews.

The adapted encoder is the one notebook 03 saved in the work folder (`make run`); the benchmark
stops with a sentence when there is none.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Goal, MissingNotebookModel, Result, notebook_04_reviews, paired_points
from helpers.baseline import tfidf_baseline
from helpers.classification import encode, fine_tune, new_classifier, predict_probabilities
from helpers.models import adapted_encoder_dir
from helpers.profile import get_profile
from helpers.stats import disagreements, mcnemar_p, over_seeds, paired_difference, predicted_labels

SIZES = {"full": {"seeds": (0, 1, 2), "reviews": None, "test_reviews": None, "steps": None},
         "smallest": {"seeds": (0, 1), "reviews": 64, "test_reviews": 32, "steps": 2}}


def stand_in_encoder(profile) -> Path:
    """Save the base encoder into a temporary folder: the smallest size exercises the code without notebook 03."""
    import tempfile

    from transformers import BertForMaskedLM

    from helpers.models import load_pretrained

    folder = Path(tempfile.mkdtemp(prefix="stand-in-encoder-"))
    load_pretrained(BertForMaskedLM, profile).save_pretrained(folder)
    return folder


def train_over_seeds(profile, seeds, encoder_dir: Path, encoded_fit, fit_labels, encoded_test, test_labels,
                     baseline_right, pad_id: int, steps: int | None) -> list[dict]:
    """Fine-tune from the base and from the adapted encoder with each seed; score each run on the test reviews."""
    runs = []
    for seed in seeds:
        for encoder in ("base", "adapted"):
            model = new_classifier(profile, "base" if encoder == "base" else encoder_dir, seed=seed)
            started = time.perf_counter()
            model, _ = fine_tune(model, encoded_fit, fit_labels, pad_id, profile, seed=seed, steps=steps)
            seconds = time.perf_counter() - started
            probabilities = predict_probabilities(model, encoded_test, pad_id, precision=profile.precision)
            right = predicted_labels(probabilities) == test_labels
            only_model, only_baseline = disagreements(right, baseline_right)
            runs.append({"seed": seed, "encoder": encoder, "accuracy": float(right.mean()), "seconds": seconds,
                         "right": right, "mcnemar_p": mcnemar_p(only_model, only_baseline),
                         "only_model": only_model, "only_baseline": only_baseline,
                         "paired": paired_difference(right, baseline_right)})
            print(f"  seed {seed}, {encoder}: {right.mean():.1%} in {seconds:.0f} s", flush=True)
    return runs


def run(size: str = "full", encoder_dir: Path | None = None) -> Result:
    from transformers import AutoTokenizer

    from helpers.models import load_pretrained

    settings = SIZES[size]
    profile = get_profile("cpu")
    encoder_dir = Path(encoder_dir or adapted_encoder_dir(profile))
    origin, stand_in = f"notebook 03's ({encoder_dir.name} in the work folder)", None
    if not (encoder_dir / "model.safetensors").is_file() and size == "smallest":
        encoder_dir = stand_in = stand_in_encoder(profile)
        origin = "a stand-in (the base encoder saved again): smallest size"
    if not (encoder_dir / "model.safetensors").is_file():
        raise MissingNotebookModel(f"No adapted encoder in {encoder_dir}: run notebook 03 first (make run), "
                                "or set TUTORIAL_WORKDIR to the work folder that holds it.")
    fit, validation, test = notebook_04_reviews(profile, settings["reviews"], settings["test_reviews"])
    test_labels = np.array(test["label"])

    baseline, c_scores = tfidf_baseline(fit["text"], fit["label"], validation["text"], validation["label"])
    baseline_right = baseline.predict(test["text"]) == test_labels
    chosen_c = baseline.named_steps["logistic"].C

    tokenizer = load_pretrained(AutoTokenizer, profile)
    encoded_fit = encode(tokenizer, fit["text"], profile.max_length)
    encoded_test = encode(tokenizer, test["text"], profile.max_length)
    try:
        runs = train_over_seeds(profile, settings["seeds"], encoder_dir, encoded_fit, fit["label"], encoded_test,
                                test_labels, baseline_right, tokenizer.pad_token_id, settings["steps"])
    finally:
        if stand_in is not None:
            shutil.rmtree(stand_in, ignore_errors=True)  # made for this run only

    base = [r["accuracy"] for r in runs if r["encoder"] == "base"]
    adapted = [r["accuracy"] for r in runs if r["encoder"] == "adapted"]
    baseline_accuracy = float(baseline_right.mean())
    base_vs_adapted = over_seeds(base, adapted)
    base_vs_tfidf = over_seeds(base, [baseline_accuracy] * len(base))

    result = Result("seeds", f"Notebook 04's cpu recipe over {len(base)} seeds: base vs adapted encoder vs TF-IDF")
    result.lines += [
        f"{len(fit):,} training reviews (the profile's training reviews less {len(validation):,} for validation), "
        f"{len(test):,} test reviews, the same for every run. Recipe: {profile.max_length} tokens head+tail, "
        f"{profile.epochs} epoch(s), batch {profile.batch_size}, lr {profile.learning_rate:g}, {profile.precision}, "
        f"dropout {profile.dropout:g}, word embeddings {'frozen' if profile.freeze_word_embeddings else 'trained'}. "
        f"A seed draws the head's initial weights and the batch order. Adapted encoder: {origin}. "
        f"TF-IDF + logistic regression: C = {chosen_c:g}, chosen on the validation reviews "
        f"(validation accuracy by C: {', '.join(f'{c:g}: {s:.3f}' for c, s in c_scores.items())}).", ""]
    result.table(["seed", "encoder", "test accuracy", "minus TF-IDF, points [95 % paired interval]",
                  "only model right / only TF-IDF right", "McNemar p", "training s"],
                 [[r["seed"], r["encoder"], f"{r['accuracy']:.1%}", paired_points(*r["paired"]),
                   f"{r['only_model']} / {r['only_baseline']}", f"{r['mcnemar_p']:.3g}", f"{r['seconds']:.0f}"]
                  for r in runs])
    low, high = base_vs_adapted["interval"]
    tfidf_low, tfidf_high = base_vs_tfidf["interval"]
    paired_lows = [r["paired"][0] - r["paired"][1] for r in runs if r["encoder"] == "base"]
    result.table(["", "mean", "spread (std over seeds)", "min - max"], [
        ["base", f"{np.mean(base):.2%}", f"{np.std(base, ddof=1) * 100:.2f} points",
         f"{min(base):.1%} - {max(base):.1%}"],
        ["adapted", f"{np.mean(adapted):.2%}", f"{np.std(adapted, ddof=1) * 100:.2f} points",
         f"{min(adapted):.1%} - {max(adapted):.1%}"],
        ["TF-IDF", f"{baseline_accuracy:.2%}", "0 (deterministic)", ""]])
    result.lines += [
        f"Base minus adapted: {base_vs_adapted['mean_difference'] * 100:+.2f} points on average, 95 % interval "
        f"{low * 100:+.2f} to {high * 100:+.2f} (Student's t, {len(base) - 1} degrees of freedom), paired t-test "
        f"p = {base_vs_adapted['paired_t_p']:.3f}; base ahead in {base_vs_adapted['a_wins']} of {len(base)} seeds. "
        f"Base minus TF-IDF: {base_vs_tfidf['mean_difference'] * 100:+.2f} points, base ahead in "
        f"{base_vs_tfidf['a_wins']} of {len(base)} seeds; over the seeds the 95 % interval is "
        f"{tfidf_low * 100:+.2f} to {tfidf_high * 100:+.2f} (the seeds' spread only, on these test reviews), and "
        f"within each seed the paired interval over the {len(test):,} test reviews starts at "
        f"{min(paired_lows) * 100:+.2f} points at its lowest.",
        ""]
    result.figures.update({
        "seeds": list(settings["seeds"]), "test_reviews": len(test), "training_reviews": len(fit),
        "base_accuracy_by_seed": [round(a, 4) for a in base],
        "adapted_accuracy_by_seed": [round(a, 4) for a in adapted],
        "tfidf_accuracy": round(baseline_accuracy, 4), "tfidf_c": chosen_c,
        "base_accuracy_mean": round(float(np.mean(base)) * 100, 2),
        "adapted_accuracy_mean": round(float(np.mean(adapted)) * 100, 2),
        "base_minus_adapted_points": round(base_vs_adapted["mean_difference"] * 100, 2),
        "base_minus_adapted_interval_points": [round(low * 100, 2), round(high * 100, 2)],
        "base_vs_adapted_paired_t_p": round(base_vs_adapted["paired_t_p"], 4),
        "base_beats_tfidf_seeds": base_vs_tfidf["a_wins"],
        "base_beats_tfidf_share": round(base_vs_tfidf["a_wins"] / len(base), 3),
        "base_minus_tfidf_points": round(base_vs_tfidf["mean_difference"] * 100, 2),
        "base_minus_tfidf_interval_points": [round(tfidf_low * 100, 2), round(tfidf_high * 100, 2)],
        "base_minus_tfidf_paired_low_min_points": round(min(paired_lows) * 100, 2),
        "classifier_train_seconds_max": round(max(r["seconds"] for r in runs), 1),
    })
    result.goals += [Goal("base_accuracy_mean", minimum=89.5), Goal("base_beats_tfidf_share", minimum=1.0),
                     Goal("base_minus_tfidf_paired_low_min_points", minimum=0.0),
                     Goal("classifier_train_seconds_max", maximum=300)]
    result.reasons["base_accuracy_mean"] = "See notebook 04, section 4, for what the cpu recipe reaches and why."
    return result
