"""WordPiece from scratch (notebook 02, pure Python) vs the fast tokenizer (Rust), on real reviews.

Both turn text into token ids and produce the same tokens (checked on every review timed). The
fast tokenizer is timed twice: one review per call, as an interactive service would call it, and the whole list in one
call, as `datasets.map(batched=True)` gives it.
"""

from __future__ import annotations

from transformers import AutoTokenizer

from benchmarks.common import Goal, Result
from helpers.data import load_reviews
from helpers.measure import alternating_medians
from helpers.models import load_pretrained
from helpers.profile import get_profile
from helpers.tokenization import wordpiece_tokenize

SIZES = {"full": {"reviews": 1_000, "repeats": 3}, "smallest": {"reviews": 20, "repeats": 1}}


def run(size: str = "full") -> Result:
    settings = SIZES[size]
    profile = get_profile("cpu")  # the same uncased WordPiece vocabulary as bert-base-uncased
    tokenizer = load_pretrained(AutoTokenizer, profile)
    vocab = tokenizer.get_vocab()
    texts = list(load_reviews(profile)["train"]["text"][:settings["reviews"]])
    fast = [tokenizer.convert_ids_to_tokens(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    matches = sum(wordpiece_tokenize(t, vocab) == tokens for t, tokens in zip(texts, fast))
    ids_only = {"add_special_tokens": False, "return_attention_mask": False, "return_token_type_ids": False}
    seconds = alternating_medians({  # each turns text into token ids
        "from scratch": lambda: [[vocab[p] for p in wordpiece_tokenize(t, vocab)] for t in texts],
        "fast, one review per call": lambda: [tokenizer(t, **ids_only)["input_ids"] for t in texts],
        "fast, all reviews in one call": lambda: tokenizer(texts, **ids_only)["input_ids"],
    }, repeats=settings["repeats"])
    scratch = seconds["from scratch"]
    result = Result("tokenization", "Tokenization: WordPiece from scratch vs the fast tokenizer")
    result.lines.append(f"{len(texts):,} of the cpu profile's training reviews; the from-scratch tokens equal the fast "
                        f"tokenizer's on {matches:,} of them. Medians of {settings['repeats']} alternating runs after "
                        "a warm-up.\n")
    result.table(["tokenizer", "reviews/s", "speed-up over from scratch"],
                 [[name, f"{len(texts) / s:,.0f}", f"{scratch / s:.1f}x"] for name, s in seconds.items()])
    result.figures["fast_vs_scratch_tokenizer_speedup"] = round(scratch / seconds["fast, all reviews in one call"], 1)
    result.figures["fast_vs_scratch_tokenizer_speedup_one_at_a_time"] = round(
        scratch / seconds["fast, one review per call"], 1)
    result.figures["wordpiece_match_rate"] = round(matches / len(texts), 4)
    result.goals.append(Goal("fast_vs_scratch_tokenizer_speedup", minimum=5))
    return result
