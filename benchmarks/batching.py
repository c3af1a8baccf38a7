"""Pad-to-max vs dynamic padding vs length-grouped batches, at 512 tokens on the cpu profile's training reviews.

Padding efficiency (real tokens / computed tokens) over one epoch of the training reviews, and the
training throughput of the `cpu` model (notebook 04's classifier and training step) on batches of
each kind. Throughput is measured on a handful of batches per kind chosen at evenly spaced
quantiles of their padded length, so that they stand for the whole epoch; the kinds take turns
step by step. Then scoring: `predict_logits` (length-sorted batches, fused attention) at several
batch sizes on the same machine, in turns, to back the CPU's default (`scoring_batch_size`).
"""

from __future__ import annotations

import copy
import time

import numpy as np
from torch.nn import functional as F

from benchmarks.common import Goal, Result, notebook_04_reviews, representative, training_reviews
from helpers.batching import length_grouped_batches, padding_efficiency, random_batches
from helpers.classification import (
    BertForReviewClassification,
    classification_loss,
    encode,
    predict_logits,
    scoring_batch_size,
)
from helpers.measure import alternating_medians
from helpers.models import load_pretrained
from helpers.training import TrainConfig, TrainingLoop

SIZES = {"full": {"reviews": None, "steps": 8, "max_length": 512, "scored": 400, "repeats": 3},
         "smallest": {"reviews": 64, "steps": 1, "max_length": 256, "scored": 32, "repeats": 1}}
BATCH_SIZE = 16
SCORING_BATCHES = (8, 16, 32, 64)


def run(size: str = "full") -> Result:
    settings = SIZES[size]
    max_length = settings["max_length"]
    reviews = training_reviews(settings["reviews"], max_length)
    profile, lengths, pad_id = reviews.profile, reviews.lengths, reviews.tokenizer.pad_token_id
    kinds = {
        "pad to max": (random_batches(len(lengths), BATCH_SIZE, seed=0), max_length),
        "dynamic padding": (random_batches(len(lengths), BATCH_SIZE, seed=0), None),
        "length-grouped": (length_grouped_batches(lengths, BATCH_SIZE, seed=0), None),
    }
    efficiency = {name: padding_efficiency(lengths, batches, pad_to) for name, (batches, pad_to) in kinds.items()}

    precision = profile.precision
    model = load_pretrained(BertForReviewClassification, profile, num_labels=2)
    config = TrainConfig(steps=10**6, learning_rate=profile.learning_rate, precision=precision)
    trainers = {name: TrainingLoop(copy.deepcopy(model), classification_loss, config) for name in kinds}
    chosen = {name: representative(batches, lengths, settings["steps"], pad_to)
              for name, (batches, pad_to) in kinds.items()}

    def make_batch(rows, pad_to):
        made = reviews.batch(rows)
        if pad_to:  # pad further, up to max_length: the extra positions are padding too
            extra = pad_to - made["input_ids"].shape[1]
            made["input_ids"] = F.pad(made["input_ids"], (0, extra), value=pad_id)
            made["attention_mask"] = F.pad(made["attention_mask"], (0, extra), value=0)
        return made

    seconds = dict.fromkeys(kinds, 0.0)
    samples = dict.fromkeys(kinds, 0)
    for step in range(-1, settings["steps"]):  # step -1 is a warm-up
        for name, (_, pad_to) in kinds.items():
            rows = chosen[name][max(step, 0)]
            made = make_batch(rows, pad_to)
            started = time.perf_counter()
            trainers[name].train_step(made)
            if step >= 0:
                seconds[name] += time.perf_counter() - started
                samples[name] += len(rows)
    throughput = {name: samples[name] / seconds[name] for name in kinds}

    result = Result("batching", f"Batching at {max_length} tokens: pad to max vs dynamic vs length-grouped")
    result.lines.append(
        f"{len(lengths):,} training reviews (the cpu profile's, from the official split), head+tail at {max_length} "
        f"tokens, batches of {BATCH_SIZE}. "
        f"Training: all-MiniLM-L6-v2 classifier, {precision}, AdamW step included, {settings['steps']} "
        f"representative batches per kind after a warm-up step, kinds alternating.\n")
    base = throughput["pad to max"]
    result.table(["batches", "padding efficiency", "training samples/s", "vs pad to max"],
                 [[name, f"{efficiency[name]:.3f}", f"{throughput[name]:.1f}", f"{throughput[name] / base:.2f}x"]
                  for name in kinds])
    result.figures[f"grouped_padding_efficiency_{max_length}"] = round(efficiency["length-grouped"], 4)
    result.figures[f"padding_efficiency_{max_length}"] = {k: round(v, 4) for k, v in efficiency.items()}
    result.figures["grouped_vs_padded_train_throughput"] = round(throughput["length-grouped"] / base, 2)
    result.figures["train_samples_per_second"] = {k: round(v, 2) for k, v in throughput.items()}
    result.figures["mean_tokens_per_review"] = round(float(np.mean(lengths)), 1)
    result.goals += [Goal(f"grouped_padding_efficiency_{max_length}", minimum=0.95),
                     Goal("grouped_vs_padded_train_throughput", minimum=1.5)]
    score_at_batch_sizes(result, model, reviews, settings)
    return result


def score_at_batch_sizes(result: Result, model, reviews, settings: dict) -> None:
    """Time `predict_logits` on the same reviews at each of SCORING_BATCHES reviews per batch, in turns.

    In the profile's precision and, where that is bf16, in float32 too: a CPU without bf16 scores in
    float32, and the default batch must suit it as well.
    """
    profile, tokenizer = reviews.profile, reviews.tokenizer
    _, _, test = notebook_04_reviews(profile, test_reviews=settings["scored"])  # held-out reviews, as notebooks score
    encoded = encode(tokenizer, test["text"], profile.max_length)
    default = scoring_batch_size(next(model.parameters()).device)
    precisions = [profile.precision] + (["fp32"] if profile.precision != "fp32" else [])
    rows, rates, versus_64, versus_fastest = [], {}, {}, {}
    for precision in precisions:
        seconds = alternating_medians({size: lambda size=size, precision=precision: predict_logits(
            model, encoded, tokenizer.pad_token_id, batch_size=size, precision=precision)
            for size in SCORING_BATCHES}, repeats=settings["repeats"])
        fastest = min(seconds.values())
        rows += [[precision, f"{size}{' (the default here)' if size == default else ''}",
                  f"{len(encoded) / t:.1f}", f"{fastest / t:.2f}x"] for size, t in seconds.items()]
        rates[precision] = {str(size): round(len(encoded) / t, 1) for size, t in seconds.items()}
        versus_64[precision] = round(seconds[64] / seconds[default], 2)
        versus_fastest[precision] = round(fastest / seconds[default], 2)
    result.lines.append(f"\nScoring (no backward pass, fused attention, batches of similar length): {len(encoded)} "
                        f"official test reviews (stratified) at {profile.max_length} tokens, the batch sizes in "
                        f"turns, median of {settings['repeats']} after a warm-up round.\n")
    result.table(["precision", "reviews per batch", "reviews/s", "vs the fastest"], rows)
    result.figures["scoring_reviews_per_second"] = rates
    result.figures["scoring_default_vs_64"] = versus_64
    result.figures["scoring_default_vs_fastest"] = min(versus_fastest.values())  # the worse precision's
    result.goals.append(Goal("scoring_default_vs_fastest", minimum=0.95))  # the default within 5 % of the best
