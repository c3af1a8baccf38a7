"""The standard Hugging Face path against notebook 04's classifier, over seeds, on the same reviews and epochs.

The standard path (`helpers.standard_path.train_the_standard_way`): `AutoModelForSequenceClassification`
with its [CLS] pooler, trained by `transformers.Trainer` with the library's defaults (the first
max_length tokens, dropout 0.1, every weight trained). Notebook 04's classifier: mean pooling,
head+tail truncation, frozen token embeddings, no dropout, its own loop (`fine_tune`). Both get the
cpu profile's training reviews (less the validation split), epochs, batch, learning rate and
precision, and are scored on the same test reviews. A seed draws the new head and the batch order.
"""

from __future__ import annotations

import numpy as np
from transformers import AutoTokenizer

from benchmarks.common import Result, notebook_04_reviews, paired_points
from helpers.classification import encode, fine_tune, new_classifier, predict_probabilities
from helpers.models import load_pretrained
from helpers.profile import get_profile
from helpers.standard_path import train_the_standard_way
from helpers.stats import disagreements, mcnemar_p, over_seeds, paired_difference, predicted_labels

SIZES = {"full": {"seeds": (0, 1, 2), "reviews": None, "test_reviews": None, "steps": None},
         "smallest": {"seeds": (0, 1), "reviews": 64, "test_reviews": 32, "steps": 2}}


def run(size: str = "full") -> Result:
    settings = SIZES[size]
    profile = get_profile("cpu")
    fit, _, test = notebook_04_reviews(profile, settings["reviews"], settings["test_reviews"])
    test_labels = np.array(test["label"])

    tokenizer = load_pretrained(AutoTokenizer, profile)
    runs = []
    for seed in settings["seeds"]:
        encoded_fit = encode(tokenizer, fit["text"], profile.max_length)
        ours, history = fine_tune(new_classifier(profile, seed=seed), encoded_fit, fit["label"],
                                  tokenizer.pad_token_id, profile, seed=seed, steps=settings["steps"])
        our_seconds = history[-1]["seconds"]  # the loop's own time, as the Trainer's train_runtime is its own
        standard, standard_tokenizer, standard_seconds = train_the_standard_way(
            profile, fit["text"], fit["label"], seed=seed, steps=settings["steps"])
        read = {"ours": encode(tokenizer, test["text"], profile.max_length),  # head+tail, as it trained
                "standard": standard_tokenizer(list(test["text"]), truncation=True,  # the first tokens, as it trained
                                               max_length=profile.max_length)["input_ids"]}
        right = {name: predicted_labels(predict_probabilities(model, read[name], tokenizer.pad_token_id,
                                                              precision=profile.precision)) == test_labels
                 for name, model in (("ours", ours), ("standard", standard))}
        only_ours, only_standard = disagreements(right["ours"], right["standard"])
        runs.append({"seed": seed, "ours": float(right["ours"].mean()), "standard": float(right["standard"].mean()),
                     "our_seconds": our_seconds, "standard_seconds": standard_seconds,
                     "paired": paired_difference(right["ours"], right["standard"]),
                     "mcnemar_p": mcnemar_p(only_ours, only_standard)})
        print(f"  seed {seed}: ours {runs[-1]['ours']:.1%} in {our_seconds:.0f} s, standard "
              f"{runs[-1]['standard']:.1%} in {standard_seconds:.0f} s", flush=True)

    ours_by_seed, standard_by_seed = [r["ours"] for r in runs], [r["standard"] for r in runs]
    compared = over_seeds(ours_by_seed, standard_by_seed)
    low, high = compared["interval"]
    result = Result("standard_path", f"Notebook 04's classifier against the standard Hugging Face path, "
                                     f"{len(runs)} seeds")
    result.lines += [
        f"{len(fit):,} training reviews, {len(test):,} test reviews, the same for every run; cpu profile budget: "
        f"{profile.epochs} epoch(s), batch {profile.batch_size}, lr {profile.learning_rate:g}, {profile.precision}, "
        f"{profile.max_length} tokens. Ours: mean pooling, head+tail truncation, frozen token embeddings, dropout "
        f"{profile.dropout:g}, `fine_tune`. Standard: `AutoModelForSequenceClassification` ([CLS] pooler), the "
        "first tokens, dropout 0.1, every weight trained, `transformers.Trainer`. Seconds: each loop's own "
        "training time (neither counts loading the model or tokenizing).", ""]
    result.table(["seed", "ours", "standard", "ours minus standard, points [95 % paired interval]", "McNemar p",
                  "ours s", "standard s"],
                 [[r["seed"], f"{r['ours']:.1%}", f"{r['standard']:.1%}", paired_points(*r["paired"]),
                   f"{r['mcnemar_p']:.3g}", f"{r['our_seconds']:.0f}", f"{r['standard_seconds']:.0f}"] for r in runs])
    result.lines += [
        f"Ours minus standard: {compared['mean_difference'] * 100:+.2f} points on average, 95 % interval "
        f"{low * 100:+.2f} to {high * 100:+.2f} over the seeds (Student's t, {len(runs) - 1} degrees of freedom), "
        f"paired t-test p = {compared['paired_t_p']:.3f}; ours ahead in {compared['a_wins']} of {len(runs)} seeds.",
        ""]
    result.figures.update({
        "standard_path_seeds": list(settings["seeds"]), "standard_path_test_reviews": len(test),
        "ours_accuracy_by_seed": [round(a, 4) for a in ours_by_seed],
        "standard_accuracy_by_seed": [round(a, 4) for a in standard_by_seed],
        "ours_minus_standard_points": round(compared["mean_difference"] * 100, 2),
        "ours_minus_standard_interval_points": [round(low * 100, 2), round(high * 100, 2)],
        "ours_vs_standard_paired_t_p": round(compared["paired_t_p"], 4),
        "our_train_seconds_mean": round(float(np.mean([r["our_seconds"] for r in runs])), 1),
        "standard_train_seconds_mean": round(float(np.mean([r["standard_seconds"] for r in runs])), 1),
    })
    return result
