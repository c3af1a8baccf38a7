"""Training cost accounting: FLOPs of the `gpu` recipe, and the time they imply on T4, A100 and H100.

The `gpu` recipe: bert-base-uncased, 22,500 training reviews (2,500 of the 25,000 held out for
validation), 512 tokens head+tail, length-grouped batches, the profile's epochs (1), then one pass
over the 25,000 test reviews. Tokens per review come from the `cpu` profile's reviews of the official
training split (real IMDB reviews, the same uncased WordPiece vocabulary). FLOPs per token follow
`helpers.measure.training_flops_per_token` (6 per multiplied weight for forward + backward, plus
attention); evaluation is a forward pass (a third of that). Beside it, the `cpu` model's training
throughput measured here, turned into achieved FLOP/s with the same formula.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import Result, representative, timed_train_steps, training_reviews
from helpers.batching import length_grouped_batches, padding_efficiency
from helpers.classification import BertForReviewClassification, classification_loss
from helpers.measure import PEAK_TFLOPS, training_flops_per_token
from helpers.models import load_pretrained
from helpers.profile import PROFILES
from helpers.training import TrainConfig, TrainingLoop

SIZES = {"full": {"reviews": None, "steps": 8, "max_length": 512},
         "smallest": {"reviews": 48, "steps": 1, "max_length": 64}}
BERT_BASE = {"layers": 12, "d_model": 768, "d_ff": 3072}
# Sustained training throughput assumed per card, TFLOP/s. T4: the middle of published BERT-base
# fine-tuning measurements (9-15 in fp16), far below 40 % of its 65 peak. A100, H100: 40 % of the
# bf16 peak, an assumption until a run on such a card measures it. An H200 (an H100's compute) measured
# 195 TFLOP/s, 20 % of peak, on full 32 x 512 bf16 steps (benchmarks/gpu_step.py, results/gpu_step.md).
T4_PUBLISHED_TFLOPS = (9.0, 15.0)
ASSUMED_TFLOPS = {"T4": 12.0, "A100": 0.4 * PEAK_TFLOPS["A100"], "H100": 0.4 * PEAK_TFLOPS["H100"]}


def multiplied_weights(layers: int, d_model: int, d_ff: int) -> int:
    """Weights that multiply each token in an encoder layer stack: Q, K, V, output, and the two FFN layers."""
    return layers * (4 * d_model * d_model + 2 * d_model * d_ff)


def run(size: str = "full") -> Result:
    settings = SIZES[size]
    max_length = settings["max_length"]
    reviews = training_reviews(settings["reviews"], max_length)
    profile, lengths = reviews.profile, reviews.lengths
    batches = length_grouped_batches(lengths, 32, seed=0)
    computed_per_review = float(np.mean(lengths)) / padding_efficiency(lengths, batches)
    padded_length = computed_per_review  # the mean padded length attention works on

    weights = multiplied_weights(**BERT_BASE)
    per_token = training_flops_per_token(weights, BERT_BASE["layers"], BERT_BASE["d_model"], padded_length)
    gpu = PROFILES["gpu"]
    train_reviews = round(25_000 * (1 - gpu.validation_fraction))
    train_flops = gpu.epochs * train_reviews * computed_per_review * per_token
    eval_flops = 25_000 * computed_per_review * per_token / 3
    total = train_flops + eval_flops

    # the cpu model, measured: a few length-grouped training steps of 16 reviews
    model = load_pretrained(BertForReviewClassification, profile, num_labels=2)
    precision = profile.precision
    config = TrainConfig(steps=10**6, learning_rate=1e-4, precision=precision)
    trainer = TrainingLoop(model, classification_loss, config)
    chosen = representative(length_grouped_batches(lengths, 16, seed=0), lengths, settings["steps"])
    seconds, tokens = timed_train_steps(trainer, [reviews.batch(rows) for rows in chosen])
    config = model.config
    cpu_weights = multiplied_weights(config.num_hidden_layers, config.hidden_size, config.intermediate_size)
    cpu_per_token = training_flops_per_token(cpu_weights, config.num_hidden_layers, config.hidden_size, padded_length)
    cpu_tflops = tokens / seconds * cpu_per_token / 1e12

    result = Result("flops", "Training cost accounting: the gpu recipe in FLOPs and minutes")
    result.lines.append(
        f"Tokens per review at {max_length} (head+tail), from {len(lengths):,} reviews of the official training "
        f"split: mean "
        f"{np.mean(lengths):.0f}, computed with length-grouped batches of 32 {computed_per_review:.0f}. "
        f"bert-base-uncased multiplies {weights / 1e6:.1f}M weights per token: {per_token / 1e9:.2f} GFLOP per "
        f"training token. {gpu.epochs} epoch(s) of {train_reviews:,} reviews + evaluation on 25,000: "
        f"{total / 1e15:.1f} PFLOP.\n")
    rows, minutes = [], {}
    t4_range = [total / (tflops * 1e12) / 60 for tflops in reversed(T4_PUBLISHED_TFLOPS)]  # fastest first
    for card in ("T4", "A100", "H100"):
        rate = ASSUMED_TFLOPS[card] * 1e12
        minutes[card] = round(total / rate / 60, 2)
        rows.append([card, f"{PEAK_TFLOPS[card]:g}", f"{ASSUMED_TFLOPS[card]:.0f}",
                     f"{train_flops / gpu.epochs / rate / 60:.1f}", f"{minutes[card]:.1f}"])
    cpu_minutes = total / (cpu_tflops * 1e12) / 60
    cpu_epoch = train_flops / gpu.epochs / (cpu_tflops * 1e12) / 60
    rows.append([f"this CPU, measured ({precision})", "", f"{cpu_tflops:.2f}", f"{cpu_epoch:,.0f}",
                 f"{cpu_minutes:,.0f}"])
    result.table(["hardware", "peak TFLOP/s", "assumed sustained TFLOP/s", "minutes per epoch",
                  f"minutes, {gpu.epochs} epoch(s) + evaluation"], rows)
    result.lines.append(f"The CPU row is measured: the all-MiniLM-L6-v2 classifier trained at "
                        f"{tokens / seconds:,.0f} computed tokens/s on length-grouped batches of 16, that is "
                        f"{cpu_tflops:.2f} TFLOP/s by the same formula; the gpu recipe at that rate would take "
                        f"the minutes shown (with bert-base, not MiniLM). The GPU rows are arithmetic, not "
                        f"measurements: the T4 at 12 TFLOP/s, the middle of published BERT-base fine-tuning "
                        f"runs ({T4_PUBLISHED_TFLOPS[0]:g}-{T4_PUBLISHED_TFLOPS[1]:g} TFLOP/s: "
                        f"{t4_range[0]:.0f}-{t4_range[1]:.0f} minutes), the A100 and H100 at an assumed 40 % "
                        f"of their bf16 peak.\n")
    result.figures["gpu_recipe_pflop"] = round(total / 1e15, 2)
    result.figures["gpu_recipe_minutes_assumed"] = minutes
    result.figures["gpu_recipe_t4_minutes_published_range"] = [round(m, 1) for m in t4_range]
    result.figures["cpu_measured_training_tflops"] = round(cpu_tflops, 3)
    return result
