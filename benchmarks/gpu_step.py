"""Time bert-base-shaped training steps on a CUDA GPU and compare them with the FLOP count (not part of make bench).

    python -m benchmarks.gpu_step

Random weights in bert-base-uncased's shape cost what bert-base costs, so no download is needed.
Two shapes of the `gpu` profile: the classifier's batch of 32 reviews at 512 tokens and an MLM
batch of 64 blocks of 256 tokens, in bf16 and in fp16 with loss scaling (a T4's path), SDPA
attention, fused AdamW. FLOPs follow `helpers.measure.training_flops_per_token` over the
non-embedding parameters (the MLM head's vocabulary projection, tied to the embeddings, is not
counted). Each line: seconds per step (mean of 8 after 3 warm-up steps), the counted TFLOP per
step, and the TFLOP/s that implies.
"""

from __future__ import annotations

import json
import sys
import time

import torch
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from helpers.measure import training_flops_per_token


def seconds_per_step(model, batch, dtype, steps=8, warmup=3) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)

    def one():
        with torch.autocast("cuda", dtype=dtype):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        one()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> dict:
    if not torch.cuda.is_available():
        sys.exit("benchmarks.gpu_step needs a CUDA GPU: run it on Colab or another GPU machine.")
    config = BertConfig(attn_implementation="sdpa")  # bert-base-uncased's shape
    results = {}
    shapes = (("classifier 32x512", BertForSequenceClassification, 32, 512), ("mlm 64x256", BertForMaskedLM, 64, 256))
    for name, cls, rows, length in shapes:
        torch.manual_seed(0)
        model = cls(config).cuda().train()
        ids = torch.randint(1000, 30000, (rows, length), device="cuda")
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if cls is BertForSequenceClassification:
            batch["labels"] = torch.randint(0, 2, (rows,), device="cuda")
        else:
            batch["labels"] = ids.masked_fill(torch.rand(rows, length, device="cuda") > 0.15, -100)
        non_embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
        flops = training_flops_per_token(non_embedding, 12, 768, length) * rows * length
        for dtype in (torch.bfloat16, torch.float16):
            seconds = seconds_per_step(model, batch, dtype)
            key = f"{name} {str(dtype)[6:]}"
            results[key] = dict(seconds_per_step=round(seconds, 4), counted_tflop=round(flops / 1e12, 2),
                                achieved_tflops=round(flops / seconds / 1e12, 1))
            print(json.dumps({key: results[key]}), flush=True)
        del model
        torch.cuda.empty_cache()
    return results


if __name__ == "__main__":
    main()
