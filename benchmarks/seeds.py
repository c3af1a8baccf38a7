"""Seeds, not anecdotes: notebook 04's cpu recipe from the base and the adapted encoder, beside TF-IDF.

The recipe (`helpers.classification.fine_tune` with the cpu profile) is trained from the base
all-MiniLM-L6-v2 and from notebook 03's adapted encoder, once per seed. A seed draws the new
head's weights and the order of the batches; the reviews stay the same: the training reviews less
a stratified validation split, and the profile's official test reviews (5,000 at the cpu profile), on
which every model is scored. The
TF-IDF baseline (C chosen on the validation reviews) is deterministic: one fit serves every seed.
The report gives each run, the mean and spread over seeds, a paired t-test over seeds and, per
seed, McNemar's test against the baseline on the same test reviews. Each run is scored twice: reading
head+tail (as it trained) and reading each long review whole (windows covering it, logits averaged:
the reading `recipe.py` chose on validation reviews); the goals name which.

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
from helpers.classification import (
    encode,
    encode_read_whole,
    fine_tune,
    new_classifier,
    predict_probabilities,
    predict_probabilities_windowed,
)
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


def compared(right, baseline_right) -> dict:
    """Return a run's accuracy and its comparison with the baseline on the same reviews."""
    only_model, only_baseline = disagreements(right, baseline_right)
    return {"accuracy": float(right.mean()), "right": right, "mcnemar_p": mcnemar_p(only_model, only_baseline),
            "only_model": only_model, "only_baseline": only_baseline,
            "paired": paired_difference(right, baseline_right)}


def train_over_seeds(profile, seeds, encoder_dir: Path | None, encoded_fit, fit_labels, encoded_test, test_labels,
                     baseline_right, pad_id: int, steps: int | None, long_windows: tuple,
                     encoders: tuple[str, ...] = ("base", "adapted")) -> list[dict]:
    """Fine-tune from the base and from the adapted encoder (`encoder_dir`) with each seed; score each run.

    `long_windows`: (the positions of the test reviews longer than the window, their windows).
    """
    long_reviews, windows = long_windows
    runs = []
    for seed in seeds:
        for encoder in encoders:
            model = new_classifier(profile, "base" if encoder == "base" else encoder_dir, seed=seed)
            started = time.perf_counter()
            model, _ = fine_tune(model, encoded_fit, fit_labels, pad_id, profile, seed=seed, steps=steps)
            seconds = time.perf_counter() - started
            probabilities = predict_probabilities(model, encoded_test, pad_id, precision=profile.precision)
            whole = probabilities.copy()  # a review of at most max_length tokens is one window: read whole already
            if len(long_reviews):
                whole[long_reviews] = predict_probabilities_windowed(model, windows, pad_id,
                                                                     precision=profile.precision)
            run = compared(predicted_labels(probabilities) == test_labels, baseline_right)
            run.update(seed=seed, encoder=encoder, seconds=seconds,
                       whole=compared(predicted_labels(whole) == test_labels, baseline_right))
            runs.append(run)
            print(f"  seed {seed}, {encoder}: {run['accuracy']:.1%} head+tail, {run['whole']['accuracy']:.1%} read "
                  f"whole, trained in {seconds:.0f} s", flush=True)
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
    windowed = encode_read_whole(tokenizer, test["text"], profile.max_length)
    long_reviews = [i for i, review in enumerate(windowed) if len(review) > 1]
    try:
        runs = train_over_seeds(profile, settings["seeds"], encoder_dir, encoded_fit, fit["label"], encoded_test,
                                test_labels, baseline_right, tokenizer.pad_token_id, settings["steps"],
                                (long_reviews, [windowed[i] for i in long_reviews]))
    finally:
        if stand_in is not None:
            shutil.rmtree(stand_in, ignore_errors=True)  # made for this run only

    base = [r["accuracy"] for r in runs if r["encoder"] == "base"]
    adapted = [r["accuracy"] for r in runs if r["encoder"] == "adapted"]
    base_whole = [r["whole"]["accuracy"] for r in runs if r["encoder"] == "base"]
    adapted_whole = [r["whole"]["accuracy"] for r in runs if r["encoder"] == "adapted"]
    baseline_accuracy = float(baseline_right.mean())
    base_vs_adapted = over_seeds(base, adapted)
    base_vs_tfidf = over_seeds(base, [baseline_accuracy] * len(base))
    whole_vs_tfidf = over_seeds(base_whole, [baseline_accuracy] * len(base))
    whole_vs_head_tail = over_seeds(base_whole, base)

    result = Result("seeds", f"Notebook 04's cpu recipe over {len(base)} seeds: base vs adapted encoder vs TF-IDF")
    result.lines += [
        f"{len(fit):,} training reviews (the profile's training reviews less {len(validation):,} for validation), "
        f"{len(test):,} test reviews, the same for every run. Recipe: {profile.max_length} tokens head+tail, "
        f"{profile.epochs} epoch(s), batch {profile.batch_size}, lr {profile.learning_rate:g}, {profile.precision}, "
        f"dropout {profile.dropout:g}, word embeddings {'frozen' if profile.freeze_word_embeddings else 'trained'}. "
        f"A seed draws the head's initial weights and the batch order. Adapted encoder: {origin}. "
        f"TF-IDF + logistic regression: C = {chosen_c:g}, chosen on the validation reviews "
        f"(validation accuracy by C: {', '.join(f'{c:g}: {s:.3f}' for c, s in c_scores.items())}). "
        f"Every run is scored reading head+tail, as it trained, and reading each review whole: the "
        f"{len(long_reviews):,} test reviews longer than {profile.max_length} tokens cut into windows that cover "
        f"them, their logits averaged (`recipe.md` chose this reading on validation reviews).", ""]
    result.table(["seed", "encoder", "reading", "test accuracy", "minus TF-IDF, points [95 % paired interval]",
                  "only model right / only TF-IDF right", "McNemar p", "training s"],
                 [[r["seed"], r["encoder"], reading, f"{found['accuracy']:.1%}", paired_points(*found["paired"]),
                   f"{found['only_model']} / {found['only_baseline']}", f"{found['mcnemar_p']:.3g}",
                   f"{r['seconds']:.0f}"]
                  for r in runs for reading, found in (("head+tail", r), ("read whole", r["whole"]))])
    low, high = base_vs_adapted["interval"]
    tfidf_low, tfidf_high = base_vs_tfidf["interval"]
    whole_low, whole_high = whole_vs_tfidf["interval"]
    gain_low, gain_high = whole_vs_head_tail["interval"]
    paired_lows = [r["paired"][0] - r["paired"][1] for r in runs if r["encoder"] == "base"]
    whole_lows = [r["whole"]["paired"][0] - r["whole"]["paired"][1] for r in runs if r["encoder"] == "base"]

    def spread(name, accuracies):
        return [name, f"{np.mean(accuracies):.2%}", f"{np.std(accuracies, ddof=1) * 100:.2f} points",
                f"{min(accuracies):.1%} - {max(accuracies):.1%}"]

    result.table(["", "mean", "spread (std over seeds)", "min - max"], [
        spread("base, head+tail", base), spread("base, read whole", base_whole),
        spread("adapted, head+tail", adapted), spread("adapted, read whole", adapted_whole),
        ["TF-IDF", f"{baseline_accuracy:.2%}", "0 (deterministic)", ""]])
    result.lines += [
        f"Base minus adapted (head+tail): {base_vs_adapted['mean_difference'] * 100:+.2f} points on average, 95 % "
        f"interval {low * 100:+.2f} to {high * 100:+.2f} (Student's t, {len(base) - 1} degrees of freedom), paired "
        f"t-test p = {base_vs_adapted['paired_t_p']:.3f}; base ahead in {base_vs_adapted['a_wins']} of {len(base)} "
        f"seeds. Base minus TF-IDF, head+tail: {base_vs_tfidf['mean_difference'] * 100:+.2f} points, ahead in "
        f"{base_vs_tfidf['a_wins']} of {len(base)} seeds, 95 % interval over the seeds {tfidf_low * 100:+.2f} to "
        f"{tfidf_high * 100:+.2f} (the seeds' spread only, on these test reviews); within each seed the paired "
        f"interval over the {len(test):,} test reviews starts at {min(paired_lows) * 100:+.2f} points at its lowest. "
        f"Read whole: {whole_vs_tfidf['mean_difference'] * 100:+.2f} points, ahead in {whole_vs_tfidf['a_wins']} of "
        f"{len(base)} seeds, interval over the seeds {whole_low * 100:+.2f} to {whole_high * 100:+.2f}, each seed's "
        f"paired interval starting at {min(whole_lows) * 100:+.2f} points at its lowest. Reading whole minus "
        f"head+tail (base): {whole_vs_head_tail['mean_difference'] * 100:+.2f} points, 95 % interval over the seeds "
        f"{gain_low * 100:+.2f} to {gain_high * 100:+.2f}, ahead in {whole_vs_head_tail['a_wins']} of {len(base)}.",
        ""]
    result.figures.update({
        "seeds": list(settings["seeds"]), "test_reviews": len(test), "training_reviews": len(fit),
        "base_accuracy_by_seed": [round(a, 4) for a in base],
        "adapted_accuracy_by_seed": [round(a, 4) for a in adapted],
        "base_read_whole_accuracy_by_seed": [round(a, 4) for a in base_whole],
        "adapted_read_whole_accuracy_by_seed": [round(a, 4) for a in adapted_whole],
        "tfidf_accuracy": round(baseline_accuracy, 4), "tfidf_c": chosen_c,
        "base_accuracy_mean": round(float(np.mean(base)) * 100, 2),
        "adapted_accuracy_mean": round(float(np.mean(adapted)) * 100, 2),
        "base_read_whole_accuracy_mean": round(float(np.mean(base_whole)) * 100, 2),
        "adapted_read_whole_accuracy_mean": round(float(np.mean(adapted_whole)) * 100, 2),
        "base_minus_adapted_points": round(base_vs_adapted["mean_difference"] * 100, 2),
        "base_minus_adapted_interval_points": [round(low * 100, 2), round(high * 100, 2)],
        "base_vs_adapted_paired_t_p": round(base_vs_adapted["paired_t_p"], 4),
        "base_beats_tfidf_seeds": base_vs_tfidf["a_wins"],
        "base_beats_tfidf_share": round(base_vs_tfidf["a_wins"] / len(base), 3),
        "base_minus_tfidf_points": round(base_vs_tfidf["mean_difference"] * 100, 2),
        "base_minus_tfidf_interval_points": [round(tfidf_low * 100, 2), round(tfidf_high * 100, 2)],
        "base_minus_tfidf_paired_low_min_points": round(min(paired_lows) * 100, 2),
        "base_read_whole_beats_tfidf_share": round(whole_vs_tfidf["a_wins"] / len(base), 3),
        "base_read_whole_minus_tfidf_points": round(whole_vs_tfidf["mean_difference"] * 100, 2),
        "base_read_whole_minus_tfidf_paired_low_min_points": round(min(whole_lows) * 100, 2),
        "read_whole_minus_head_tail_points": round(whole_vs_head_tail["mean_difference"] * 100, 2),
        "read_whole_minus_head_tail_interval_points": [round(gain_low * 100, 2), round(gain_high * 100, 2)],
        "classifier_train_seconds_max": round(max(r["seconds"] for r in runs), 1),
    })
    result.goals += [Goal("base_accuracy_mean", minimum=89.5), Goal("base_beats_tfidf_share", minimum=1.0),
                     Goal("base_minus_tfidf_paired_low_min_points", minimum=0.0),
                     Goal("base_read_whole_beats_tfidf_share", minimum=1.0),
                     Goal("base_read_whole_minus_tfidf_paired_low_min_points", minimum=0.0),
                     Goal("classifier_train_seconds_max", maximum=300)]
    result.reasons["base_accuracy_mean"] = "See notebook 04, section 4, for what the cpu recipe reaches and why."
    return result
