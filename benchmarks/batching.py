"""Pad-to-max vs dynamic padding vs length-grouped batches, at 512 tokens on the cpu profile's training reviews.

Padding efficiency (real tokens / computed tokens) over one epoch of the training reviews, and the
training throughput of the `cpu` model (notebook 04's classifier and training step) on batches of
each kind. Throughput is measured on a handful of batches per kind chosen at evenly spaced
quantiles of their padded length, so that they stand for the whole epoch; the kinds take turns
step by step.
"""

from __future__ import annotations

import copy
import time

import numpy as np
from torch.nn import functional as F

from benchmarks.common import Goal, Result, representative, training_reviews
from helpers.batching import length_grouped_batches, padding_efficiency, random_batches
from helpers.classification import BertForReviewClassification, classification_loss
from helpers.models import load_pretrained
from helpers.training import TrainConfig, TrainingLoop

SIZES = {"full": {"reviews": None, "steps": 8, "max_length": 512},
         "smallest": {"reviews": 64, "steps": 1, "max_length": 256}}
BATCH_SIZE = 16


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
    return result
