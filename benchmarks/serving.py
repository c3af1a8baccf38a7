"""Serving on a CPU: the fine-tuned classifier in float32 vs dynamic int8 quantization.

Uses notebook 04's classifier when the work folder has one (`make notebooks` removes its work
folder; `make run` keeps it). Otherwise it fine-tunes one here first, shorter than notebook 04
(256 tokens, 1 epoch of the cpu profile's training reviews), and says so. Latency per review at batch
1 (each of 32 held-out reviews alone) and at batch 32 (the same reviews, length-sorted, in one
padded batch); the models take turns. Accuracy on the held-out reviews. Beside them, the float32
model with the attention written out (the `eager` kernel the cpu profile trains with under bf16),
to tell what that kernel costs at each batch size from what padding costs: why every helper
scores with the fused kernel.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from benchmarks.common import Goal, Result
from helpers.batching import pad_batch
from helpers.classification import encode, predict_probabilities, train_short_classifier
from helpers.data import balanced_sample, load_reviews
from helpers.measure import alternating_medians
from helpers.models import classifier_dir
from helpers.profile import get_profile
from helpers.serving import INT8_MAX_ACCURACY_DROP, load_classifier, quantize_int8, weights_megabytes
from helpers.stats import predicted_labels

SIZES = {"full": {"train_max_length": 256, "test_reviews": None, "repeats": 5, "use_saved": True},
         "smallest": {"train_max_length": 64, "train_steps": 2, "test_reviews": 32, "repeats": 1, "use_saved": False}}


def run(size: str = "full") -> Result:
    settings = SIZES[size]
    profile = get_profile("cpu")
    splits = load_reviews(profile)
    test = balanced_sample(splits["test"], settings["test_reviews"] or len(splits["test"]), profile.seed)
    saved = classifier_dir(profile)
    if settings["use_saved"] and (saved / "model.safetensors").is_file():
        model, tokenizer = load_classifier(saved)
        max_length, origin = profile.max_length, f"notebook 04's classifier ({profile.max_length} tokens)"
    else:
        max_length = settings["train_max_length"]
        model, tokenizer = train_short_classifier(profile, splits["train"], max_length=max_length,
                                                  steps=settings.get("train_steps"))
        how_long = "a few steps" if "train_steps" in settings else "1 epoch"
        origin = f"no saved classifier: fine-tuned here for {how_long} at {max_length} tokens"
    int8_model = quantize_int8(model)
    written_out = copy.deepcopy(model)
    written_out.set_attn_implementation("eager")
    encoded, labels = encode(tokenizer, test["text"], max_length), np.array(test["label"])
    accuracy = {name: float((predicted_labels(predict_probabilities(m, encoded, tokenizer.pad_token_id)) == labels)
                            .mean()) for name, m in (("float32", model), ("int8", int8_model))}

    reviews = sorted(encoded[:32], key=len)
    singles = [pad_batch([ids], tokenizer.pad_token_id) for ids in reviews]
    together = pad_batch(reviews, tokenizer.pad_token_id)

    def one_at_a_time(m):
        return lambda: [m(**b) for b in singles]

    with torch.inference_mode():
        seconds = alternating_medians({
            "float32, batch 1": one_at_a_time(model), "int8, batch 1": one_at_a_time(int8_model),
            "float32, batch 32": lambda: model(**together), "int8, batch 32": lambda: int8_model(**together),
            "float32 written out, batch 1": one_at_a_time(written_out),
            "float32 written out, batch 32": lambda: written_out(**together),
        }, repeats=settings["repeats"])
    ms = {name: s * 1e3 / len(reviews) for name, s in seconds.items()}  # per review
    result = Result("serving", "Serving on CPU: float32 vs dynamic int8 quantization")
    kernel = model.config._attn_implementation
    result.lines.append(f"{origin}, attention kernel {kernel}; {torch.get_num_threads()} threads. Latency per review "
                        f"over {len(reviews)} "
                        f"held-out reviews of {len(reviews[0])} to {len(reviews[-1])} tokens, medians of "
                        f"{settings['repeats']} "
                        f"alternating runs after a warm-up; accuracy on {len(labels):,} held-out reviews.\n")
    result.table(["model", "weights (MB)", "ms per review, batch 1", "ms per review, batch 32", "accuracy"],
                 [[name, f"{weights_megabytes(m):.0f}", f"{ms[name + ', batch 1']:.1f}",
                   f"{ms[name + ', batch 32']:.1f}", f"{accuracy[name]:.1%}"]
                  for name, m in (("float32", model), ("int8", int8_model))])
    result.lines.append(f"The same float32 model with the attention written out (`eager`): "
                        f"{ms['float32 written out, batch 1']:.1f} ms per review at batch 1, "
                        f"{ms['float32 written out, batch 32']:.1f} at batch 32 (real tokens are "
                        f"{sum(map(len, reviews)) / (len(reviews) * len(reviews[-1])):.0%} of the padded batch).\n")
    result.figures["written_out_vs_fused_fp32_batch_32"] = round(
        ms["float32 written out, batch 32"] / ms["float32, batch 32"], 2)
    result.figures["written_out_vs_fused_fp32_batch_1"] = round(
        ms["float32 written out, batch 1"] / ms["float32, batch 1"], 2)
    result.figures["int8_vs_fp32_cpu_inference_speedup"] = round(ms["float32, batch 1"] / ms["int8, batch 1"], 2)
    result.figures["int8_vs_fp32_cpu_inference_speedup_batch_32"] = round(
        ms["float32, batch 32"] / ms["int8, batch 32"], 2)
    result.figures["int8_accuracy_drop"] = round((accuracy["float32"] - accuracy["int8"]) * 100, 2)  # points
    result.figures["accuracy_fp32"], result.figures["accuracy_int8"] = accuracy["float32"], accuracy["int8"]
    result.goals += [Goal("int8_vs_fp32_cpu_inference_speedup", minimum=1.2),
                     Goal("int8_vs_fp32_cpu_inference_speedup_batch_32", minimum=1.2),
                     Goal("int8_accuracy_drop", maximum=INT8_MAX_ACCURACY_DROP * 100)]
    return result
