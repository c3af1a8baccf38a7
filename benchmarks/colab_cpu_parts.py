"""Time the `gpu` profile's heaviest CPU-bound pieces at their real sizes (for results/colab_t4.md; not in make bench).

    TUTORIAL_DATASET=../shared/data/imdb python -m benchmarks.colab_cpu_parts

On Colab the `gpu` profile leaves some work on the CPU: notebook 02's tokenizer passes, the TF-IDF
baseline, and the serving sections of 06 and 07, which run bert-base on the CPU in float32 and
int8. Random weights in bert-base's shape cost what bert-base costs. Prints one JSON line of
seconds and milliseconds; the FLOP arithmetic that turns them into minutes is in colab_t4.md.
"""

from __future__ import annotations

import json
import time

import torch
from transformers import AutoTokenizer, BertConfig

from helpers.baseline import tfidf_baseline
from helpers.classification import BertForReviewClassification
from helpers.data import load_reviews
from helpers.models import minilm_path
from helpers.profile import get_profile
from helpers.serving import median_latency_ms, quantize_int8


def main() -> dict:
    torch.manual_seed(0)
    imdb = load_reviews(get_profile("gpu"), clean=False)  # all of it, as the gpu profile reads it
    texts = [text for split in ("train", "test", "unsupervised") for text in imdb[split]["text"]]
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())  # bert-base-uncased's vocabulary
    out = {}
    start = time.perf_counter()
    tokenizer(texts, add_special_tokens=False)
    out["fast tokenizer, 100,000 texts, s"] = round(time.perf_counter() - start, 1)
    model = BertForReviewClassification(BertConfig(num_labels=2)).eval()  # bert-base's shape and cost
    ids = torch.randint(1000, 30000, (32, 512))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    one = {key: value[:1, :256] for key, value in batch.items()}
    out["bert-base fp32, batch 32 x 512, ms"] = round(median_latency_ms(model, batch, repeats=2))
    out["bert-base fp32, 1 x 256, ms"] = round(median_latency_ms(model, one, repeats=3))
    int8 = quantize_int8(model)
    out["bert-base int8, batch 32 x 512, ms"] = round(median_latency_ms(int8, batch, repeats=2))
    out["bert-base int8, 1 x 256, ms"] = round(median_latency_ms(int8, one, repeats=3))
    train = imdb["train"].shuffle(seed=0)
    start = time.perf_counter()
    tfidf_baseline(train["text"][:22_500], train["label"][:22_500], train["text"][22_500:], train["label"][22_500:])
    out["tfidf_baseline (C grid), 22,500 + 2,500 reviews, s"] = round(time.perf_counter() - start)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
