"""The MLM head: project every position onto the vocabulary, or only the masked ones (notebook 03).

The masked-only loss equals the full-vocabulary loss (checked); a forward and backward pass of
each is timed in turns on the same masked batch of the `cpu` profile's MLM blocks.
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, BertForMaskedLM, DataCollatorForLanguageModeling

from benchmarks.common import Goal, Result
from helpers.data import load_reviews
from helpers.device import autocast, pick_device
from helpers.measure import alternating_medians
from helpers.mlm import full_vocabulary_loss, group_into_blocks, masked_only_loss
from helpers.models import load_pretrained
from helpers.profile import get_profile

SIZES = {"full": {"repeats": 5}, "smallest": {"repeats": 1, "batch_size": 4, "block_size": 32}}


def run(size: str = "full") -> Result:
    settings = SIZES[size]
    profile = get_profile("cpu")
    batch_size = settings.get("batch_size", profile.mlm_batch_size)
    block_size = settings.get("block_size", profile.mlm_block_size)
    tokenizer = load_pretrained(AutoTokenizer, profile)
    texts = list(load_reviews(profile)["train"]["text"][:200])
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    blocks = group_into_blocks(ids, block_size, tokenizer.cls_token_id, tokenizer.sep_token_id)[:batch_size]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    torch.manual_seed(0)
    device = pick_device()
    batch = {k: v.to(device) for k, v in collator([{"input_ids": b} for b in blocks]).items()}
    model = load_pretrained(BertForMaskedLM, profile, attention_probs_dropout_prob=0.0).to(device).train()
    precision = profile.precision

    def step(loss_fn):
        def go():
            torch.manual_seed(1)  # the same dropout for both
            with autocast(device, precision):
                loss = loss_fn(model, batch)
            loss.backward()
            model.zero_grad(set_to_none=True)
            return loss.item()
        return go

    full, masked = step(full_vocabulary_loss)(), step(masked_only_loss)()
    assert abs(full - masked) <= 1e-3 * abs(full), f"the losses differ: {full} vs {masked}"
    seconds = alternating_medians({"full vocabulary": step(full_vocabulary_loss),
                                   "masked only": step(masked_only_loss)}, repeats=settings["repeats"])
    speedup = seconds["full vocabulary"] / seconds["masked only"]
    result = Result("mlm_head", "MLM head: full-vocabulary projection vs masked positions only")
    result.lines.append(f"all-MiniLM-L6-v2 with a new MLM head on `{device}`, {batch_size} blocks of {block_size} "
                        "tokens, "
                        f"{int((batch['labels'] != -100).sum())} masked positions, {precision}; forward + backward, "
                        f"medians of {settings['repeats']} alternating runs after a warm-up. "
                        f"Loss: full {full:.4f}, masked only {masked:.4f}.\n")
    result.table(["loss", "ms per forward + backward", "speed-up"],
                 [[name, f"{t * 1e3:.0f}", f"{seconds['full vocabulary'] / t:.2f}x"] for name, t in seconds.items()])
    result.figures["mlm_masked_only_step_speedup"] = round(speedup, 2)
    result.goals.append(Goal("mlm_masked_only_step_speedup", minimum=1.5))
    return result
