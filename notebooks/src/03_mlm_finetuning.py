# %% [markdown]
# # 03 · Masked-language-model fine-tuning: teaching BERT the language of movie reviews
#
# {{COLAB_BADGE}}
#
# **What you will learn.** BERT was pretrained on Wikipedia and books. Before we ask it to judge
# movie reviews (notebook 04) we let it read reviews with the objective it was pretrained with:
# hide some tokens and make it guess them. We build the masking by hand, check it against the
# `transformers` collator, cut the reviews into blocks, measure held-out *perplexity* with a mask
# drawn once, write the training loop out (AdamW, warm-up and decay, gradient clipping, mixed
# precision), make it faster by projecting only the masked positions onto the vocabulary, train,
# and save the adapted encoder (does it make a better classifier? `benchmarks/results/seeds.md`
# trains notebook 04's classifier from it over three seeds). Training writes checkpoints: if Colab disconnects,
# re-run the training cell and it resumes where it stopped.
#
# **What you need.** Reading: about 50 minutes. Running: a CPU is enough at the `cpu` profile:
# 5 minutes on the 2-core AMD EPYC with bf16 (AVX-512 BF16) that built the committed run, about 4
# of them training, and 9.3 minutes on a 2-core CPU without bf16 (fp32, 8 of training; the head-only
# phase of section 7 is the cheaper one: no gradient flows back through the encoder); the kernel's
# resident memory peaked at 3.7 GB (sampled every second, in an earlier build).
# The `gpu` profile trains `bert-base-uncased` for 1,000 steps of 64 blocks of 256 tokens
# (16 M tokens) on IMDB's train and unlabelled reviews; its time is printed by the training cell
# on the card at hand. Not measured on a T4: by the FLOP count about 13 minutes of training there
# and 16-17 for the whole notebook (`benchmarks/results/colab_t4.md`).

# %% [markdown]
# As in every notebook, the first cell picks the device and the profile, and prints the versions and
# the profile settings this notebook uses. The stored outputs come from a `cpu` run; on a machine with a
# GPU (Colab's T4, say) your run takes the `gpu` profile, and its numbers will differ.

# %%
import copy
import math
import tempfile
import time
from collections import Counter

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch.utils.data import DataLoader
from transformers import (
    AutoTokenizer,
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    get_linear_schedule_with_warmup,
)

from helpers.batching import random_batches
from helpers.checkpoints import data_fingerprint
from helpers.data import balanced_sample, load_reviews
from helpers.diagrams import draw_mlm_masking
from helpers.measure import alternating_medians
from helpers.mlm import (
    fill_mask,
    fixed_eval_batches,
    full_vocabulary_loss,
    masked_only_loss,
    masked_top1_accuracy,
    perplexity,
)
from helpers.models import adapted_encoder_dir, load_pretrained, save_atomically
from helpers.plotting import LiveCurve
from helpers.profile import work_dir
from helpers.session import print_summary, start_notebook
from helpers.training import TrainConfig, TrainingLoop, warmup_then_decay

session = start_notebook(uses=("model_id", "dataset_id", "precision", "seed", "mlm_block_size", "mlm_batch_size",
                               "mlm_steps", "mlm_learning_rate", "mlm_head_steps", "mlm_head_learning_rate",
                               "mlm_eval_blocks"))
profile, device = session.profile, session.device
tokenizer = load_pretrained(AutoTokenizer, profile)

# %% [markdown]
# ## 1. The objective, by hand
#
# Masked-language modelling (Devlin et al., 2019): choose 15 % of the tokens of a text. Of the
# chosen ones, 80 % are replaced by `[MASK]`, 10 % by a random token and 10 % are left as they
# are; the model must predict the original token at every chosen position. The loss is computed
# **only** at chosen positions: the label of every other position is `-100`, the value PyTorch's
# cross-entropy ignores. Why not always `[MASK]`? Because `[MASK]` never occurs when the model is
# later used; the random and unchanged 20 % force it to keep a good representation of every token.
#
# Here is the whole recipe in one function. `special` marks `[CLS]`, `[SEP]` and padding, which
# are never chosen.

# %%
def mask_tokens(input_ids, special, mask_id, vocab_size, probability=0.15, generator=None):
    """Return (inputs, labels): `probability` of the non-special tokens chosen, 80/10/10 replaced."""
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    labels = input_ids.masked_fill(~chosen, -100)  # loss only where a token was chosen
    roll = torch.rand(input_ids.shape, generator=generator)  # one die per position decides what happens
    inputs = input_ids.masked_fill(chosen & (roll < 0.8), mask_id)  # 80 %: [MASK]
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)  # 10 %: a random token; the last 10 % stay as they are
    inputs = torch.where(swap, random_tokens, inputs)
    return inputs, labels


# %% [markdown]
# On one review-like sentence, with a high masking rate (half the tokens) and a seed at which all
# three cases show up: most chosen tokens become `[MASK]`, one becomes a random token, some stay
# as they are, and each still carries its label.

# %%
sentence = "The cinematography was stunning, but the screenwriter overdid the melodrama and the ending was unwatchable."
ids = torch.tensor(tokenizer(sentence)["input_ids"])
special = torch.tensor(tokenizer.get_special_tokens_mask(ids.tolist(), already_has_special_tokens=True)).bool()
inputs, labels = mask_tokens(ids, special, tokenizer.mask_token_id, len(tokenizer), probability=0.5,
                             generator=torch.Generator().manual_seed(34))
cases = ["" if label < 0 else "[MASK]" if seen == tokenizer.mask_token_id else "kept" if seen == token
         else "random token" for token, seen, label in zip(ids.tolist(), inputs.tolist(), labels.tolist())]
table = pd.DataFrame({
    "token": tokenizer.convert_ids_to_tokens(ids),
    "model sees": tokenizer.convert_ids_to_tokens(inputs),
    "label": [tokenizer.convert_ids_to_tokens(int(t)) if t >= 0 else "-100 (no loss)" for t in labels],
    "chosen, and then": cases,
})
print(table.to_string())
assert {"[MASK]", "random token", "kept"} <= set(cases), "all three cases of the recipe appear"

# %% [markdown]
# The same sentence drawn (at the same high rate, half the tokens chosen): above, its tokens;
# below, what the model reads, coloured by what became of each chosen token (a red arrow: the
# model must predict the token above it from the one below).

# %%
draw_mlm_masking(table["token"].tolist(), table["model sees"].tolist(), (labels >= 0).tolist())
plt.show()

# %% [markdown]
# With the real rate of 15 % and many tokens, the shares must come out as the recipe says. We mask
# the sentence (without `[CLS]` and `[SEP]`) repeated 20,000 times and count.

# %%
many = ids[1:-1].repeat(20_000)  # no special tokens
print(f"{len(many):,} tokens ({len(ids) - 2} per sentence)")
none_special = torch.zeros_like(many, dtype=torch.bool)
inputs, labels = mask_tokens(many, none_special, tokenizer.mask_token_id, len(tokenizer),
                             generator=torch.Generator().manual_seed(0))
chosen = labels != -100
shares = {
    "chosen / all": chosen.float().mean().item(),
    "[MASK] / chosen": (inputs[chosen] == tokenizer.mask_token_id).float().mean().item(),
    "unchanged / chosen": (inputs[chosen] == many[chosen]).float().mean().item(),
    "other token / chosen": ((inputs[chosen] != many[chosen]) & (inputs[chosen] != tokenizer.mask_token_id))
    .float().mean().item(),
}
for name, value in shares.items():
    print(f"{name:<22} {value:.3f}")
assert abs(shares["chosen / all"] - 0.15) < 0.005
assert abs(shares["[MASK] / chosen"] - 0.8) < 0.01
assert abs(shares["unchanged / chosen"] - 0.1) < 0.01 and abs(shares["other token / chosen"] - 0.1) < 0.01

# %% [markdown]
# ### The same with `DataCollatorForLanguageModeling`
#
# `transformers` ships this recipe as a *collator*: the function a `DataLoader` calls to turn a
# list of examples into a batch. It pads, finds the special tokens itself and draws a new mask
# every time it is called, so each epoch sees different masks. We check it draws the same shares.

# %%
collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
torch.manual_seed(0)
batch = collator([{"input_ids": ids.tolist()} for _ in range(20_000)])
chosen = batch["labels"] != -100
original = ids.expand(20_000, -1)
collator_shares = {
    "chosen / all": (chosen.sum() / (~special).sum() / 20_000).item(),
    "[MASK] / chosen": (batch["input_ids"][chosen] == tokenizer.mask_token_id).float().mean().item(),
    "unchanged / chosen": (batch["input_ids"][chosen] == original[chosen]).float().mean().item(),
}
for name, value in collator_shares.items():
    print(f"{name:<22} {value:.3f}   (ours: {shares[name]:.3f})")
    assert abs(value - shares[name]) < 0.01
assert not chosen[:, 0].any() and not chosen[:, -1].any(), "[CLS] and [SEP] are never chosen"

# %% [markdown]
# **Whole-word masking** is an option of the same collator in transformers 5 (there is no separate
# class any more): when one piece of a word is chosen, all its pieces are, so the model cannot
# guess `##watch` and `##able` from a visible `un`. It needs each token's character offsets to
# know which pieces form a word. Three draws of the same sentence: every chosen word is masked whole.

# %%
whole_words = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3, whole_word_mask=True)
encoded = tokenizer(sentence, return_offsets_mapping=True)
tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
pieces = [i for i, t in enumerate(tokens) if t.startswith("##")]  # continuations: over ##di ##d, un ##watch ##able
chosen_pieces = 0
for seed in range(3):
    torch.manual_seed(seed)
    labels = whole_words([encoded])["labels"][0]
    print(" ".join(t if label == -100 else f"[{t}]" for t, label in zip(tokens, labels.tolist())))
    assert all((labels[i] == -100) == (labels[i - 1] == -100) for i in pieces), "a word was masked in part"
    chosen_pieces += sum(int(labels[i] != -100) for i in pieces)
assert chosen_pieces > 0

# %% [markdown]
# ## 2. Data: reviews cut into blocks
#
# BERT reads fixed-size inputs. Instead of padding every review (notebook 02 showed how much compute
# that wastes), MLM fine-tuning concatenates all the text, a `[SEP]` after each review, and cuts the
# stream into blocks of the same length, each framed by `[CLS] ... [SEP]`. No padding at all; a
# review may run over two blocks, which is fine for learning words from their context.
#
# The held-out text must be other *reviews*, not other blocks of the same reviews, or the model
# would be scored on sentences it has read. We train on the training reviews and IMDB's unlabelled
# reviews (all 25,000 and 50,000 at the `gpu` profile, 4,000 and 2,000 at the `cpu` profile) and
# measure on reviews of the test split, leaving out
# any test review that also occurs, word for word, in the training text (IMDB has a few such
# duplicates). Notebook 04 never trains on test reviews either.

# %%
def group_into_blocks(token_ids, block_size, cls_id, sep_id):
    """Concatenate tokenized texts ([SEP] after each) and cut the stream into [CLS] ... [SEP] blocks."""
    stream = [token for ids in token_ids for token in [*ids, sep_id]]
    body = block_size - 2  # room for [CLS] and [SEP]
    return [[cls_id, *stream[i:i + body], sep_id] for i in range(0, len(stream) - body + 1, body)]


splits = load_reviews(profile)
train_texts = list(splits["train"]["text"])
if "unsupervised" in splits:  # IMDB's unlabelled reviews (all 50,000 at the gpu profile)
    train_texts += list(splits["unsupervised"]["text"])
seen = set(train_texts)
test = splits["test"]
unseen = test.select([i for i, text in enumerate(test["text"]) if text not in seen])  # IMDB repeats a few verbatim
n_eval = math.ceil(profile.mlm_eval_blocks * profile.mlm_block_size / 100)  # reviews have ~100+ tokens each
eval_texts = list(balanced_sample(unseen, n_eval, seed=profile.seed)["text"])  # the Hub's splits are sorted by label
print(f"{len(test) - len(unseen)} test review(s) also occur in the training text: left out")

start = time.perf_counter()
tokenize = lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]  # noqa: E731
block_size = profile.mlm_block_size
train_blocks = group_into_blocks(tokenize(train_texts), block_size, tokenizer.cls_token_id, tokenizer.sep_token_id)
eval_blocks = group_into_blocks(tokenize(eval_texts), block_size, tokenizer.cls_token_id, tokenizer.sep_token_id)
eval_blocks = eval_blocks[:profile.mlm_eval_blocks]
print(f"training text : {len(train_texts):,} reviews -> {len(train_blocks):,} blocks of {block_size} tokens")
print(f"held-out text : {len(eval_texts):,} reviews -> {len(eval_blocks):,} blocks")
print(f"first block   : {tokenizer.decode(train_blocks[0])[:160]} ...")
assert len(eval_blocks) == profile.mlm_eval_blocks and {len(b) for b in train_blocks + eval_blocks} == {block_size}

# %% [markdown]
# ## 3. A fixed evaluation mask
#
# The collator draws new masks on every call, so the held-out loss would change from one
# measurement to the next even for the same model. For a number we can compare before and after
# training (and that nbval can compare between runs) we mask the held-out blocks **once**, with a
# seed, and keep those batches. `helpers.mlm.fixed_eval_batches` does this without disturbing the
# notebook's random generator.
#
# The score is **perplexity**: the exponential of the mean cross-entropy over the masked tokens. A
# perplexity of 100 means the model is as unsure as if it picked uniformly among 100 tokens; a
# model that knows nothing over BERT's 30,522 tokens scores about 30,522.

# %%
eval_batches = fixed_eval_batches(eval_blocks, collator, batch_size=32, seed=profile.seed)
again = fixed_eval_batches(eval_blocks, collator, batch_size=32, seed=profile.seed)
masked_tokens = sum(int((b["labels"] != -100).sum()) for b in eval_batches)
print(f"{len(eval_batches)} held-out batches, {masked_tokens:,} masked tokens to predict")
assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(eval_batches, again))

# %% [markdown]
# ## 4. Before training
#
# We load the profile's model with an MLM head. **At the `cpu` profile the head starts new:**
# all-MiniLM-L6-v2 was distilled into a sentence encoder and ships no MLM head, so
# `BertForMaskedLM` adds one (a dense layer, a LayerNorm and a bias over the vocabulary; the
# projection onto the vocabulary is tied to the input embeddings, which are trained). Its guesses
# start as noise, and the perplexity starts far above the uniform 30,522. At the `gpu` profile
# `bert-base-uncased` brings its pretrained head, and starts low.
#
# We switch attention dropout off. On a CPU, dropout on the attention weights forces PyTorch's
# fused attention onto a slow path that draws a random mask over the whole (length x length)
# attention matrix of every head. Dropout elsewhere in the model stays on.

# %%
torch.manual_seed(profile.seed)  # the new head's initial weights do not depend on the cells above
model = load_pretrained(BertForMaskedLM, profile, attention_probs_dropout_prob=0.0).to(device)
pretrained_state = copy.deepcopy(model.state_dict())  # to start the side experiments from the same point
perplexity_before = perplexity(model, eval_batches, device)
top1_before = masked_top1_accuracy(model, eval_batches, device)  # share of masked tokens whose top guess is right
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
print(f"held-out perplexity before training: {perplexity_before:,.0f}")

# %% [markdown]
# What does the model guess for a few review-like prompts? The top 5 tokens for each `[MASK]`:

# %%
prompts = [
    "this movie was [MASK].",
    "the acting was [MASK] and the plot was boring.",
    "i would [MASK] recommend this film to anyone.",
    "one of the best [MASK] i have ever seen.",
    "the special [MASK] were terrible.",
    "the [MASK] of this film is beautiful.",
]
guesses_before = fill_mask(model, tokenizer, prompts)
print(pd.DataFrame({"prompt": prompts, "top 5 before": [" ".join(g) for g in guesses_before]}).to_string())

# %% [markdown]
# ## 5. A faster loss: project only the masked positions
#
# `BertForMaskedLM` turns *every* position's hidden state into 30,522 vocabulary scores, then
# throws away the 85 % whose label is `-100`. At 32 blocks of 128 tokens that is a
# 4,096 x 30,522 matrix (500 MB in fp32) when only about 600 rows are used. `helpers.mlm.masked_only_loss`
# runs the encoder, picks the hidden states of the chosen positions, and projects only those:
#
# ```python
# hidden = model.bert(input_ids=..., attention_mask=...).last_hidden_state   # (B, T, d_model)
# chosen = batch["labels"] != -100                                         # (B, T)
# logits = model.cls(hidden[chosen])                                       # (n_chosen, vocab)
# loss = F.cross_entropy(logits.float(), batch["labels"][chosen])
# ```
#
# The loss is the same number (the discarded rows never entered it); we check that, then time a
# forward and backward pass of each on the same half training batch (the full-vocabulary pass
# holds several copies of those logits at once), alternating so that both see the same machine load.

# %%
# NBVAL_IGNORE_OUTPUT
timing_blocks = train_blocks[:profile.mlm_batch_size // 2]  # half a batch: the full logits are large
batch = session.place(collator([{"input_ids": b} for b in timing_blocks]))
model.train()
torch.manual_seed(0)
full = full_vocabulary_loss(model, batch)
torch.manual_seed(0)
masked_only = masked_only_loss(model, batch)
torch.testing.assert_close(masked_only, full, rtol=1e-4, atol=1e-4)


def step(loss_fn):
    """Return a function that runs one forward and backward pass with `loss_fn`."""
    def run():
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
    return run


# the two take turns, 5 timed rounds after a warm-up round (helpers.measure.alternating_medians)
median = alternating_medians({"full vocabulary": step(full_vocabulary_loss), "masked only": step(masked_only_loss)},
                             repeats=5)
masked_only_step_speedup = median["full vocabulary"] / median["masked only"]
model.zero_grad(set_to_none=True)
print(f"loss: full vocabulary {full.item():.4f}, masked only {masked_only.item():.4f}")
for name, seconds in median.items():
    print(f"{name:<16} {seconds * 1000:7.0f} ms per forward + backward (median of 5)")
print(f"masked-only speed-up: {masked_only_step_speedup:.2f}x")
# a smoke run's tiny model computes so little that a GPU step is bound by kernel launches: reported there
session.expect(masked_only_step_speedup > 1.0, "projecting only the masked positions makes a step faster")

# %% [markdown]
# ## 6. The training loop, written out
#
# Everything a good fine-tuning loop does, in one function:
#
# - **AdamW** with weight decay on the weight matrices only (decaying biases and LayerNorm gains
#   only hurts);
# - a **learning rate that rises linearly** over the first 6 % of the steps (warm-up: Adam's
#   moment estimates are poor at first, and large early steps would wreck the pretrained weights)
#   **and then falls linearly** to zero;
# - **gradient clipping** to a global norm of 1, against the occasional exploding batch;
# - **mixed precision** on a GPU: the forward pass under `torch.autocast` in bf16 (A100, H100) or
#   fp16 (T4). fp16 has so few exponent bits that small gradients underflow to zero, so the loss is
#   multiplied by a large factor before `backward` and the gradients divided by it before the
#   step (`GradScaler`, which also skips steps whose gradients overflowed). bf16 has fp32's exponent
#   range and needs no scaling. On a CPU with native bf16 (AMX or AVX-512 BF16) the profile uses
#   bf16 too; elsewhere both are off (`enabled=False`);
# - a seed per step, so that the masks and dropout of step *n* are the same whether or not the run
#   was interrupted and resumed (section 7).

# %%
def train_by_hand(model, batches, steps, learning_rate, precision="fp32", warmup_fraction=0.06,
                  weight_decay=0.01, max_grad_norm=1.0, seed=0):
    """Train `model` for `steps` batches drawn from the iterable `batches`; return the losses."""
    decay = [p for p in model.parameters() if p.ndim >= 2]  # weight matrices and embeddings
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # biases and LayerNorm gains
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=learning_rate)
    warmup = max(1, round(warmup_fraction * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_then_decay(step, warmup, steps))
    device = next(model.parameters()).device
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    losses, data = [], iter(batches)
    model.train()
    for step in range(steps):
        torch.manual_seed(seed * 1_000_003 + step)  # = helpers.training.step_seed(seed, step)
        batch = {k: v.to(device) for k, v in next(data).items()}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = masked_only_loss(model, batch)
        scaler.scale(loss).backward()  # scale() is the identity when fp16 is off
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        scaler.step(optimizer)  # skipped if fp16 gradients overflowed
        scaler.update()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


# %% [markdown]
# `warmup_then_decay` is the schedule from `helpers.training`, drawn here over 100 steps with 6 of
# warm-up, beside the linear schedule of `transformers` (`get_linear_schedule_with_warmup`, what
# the `Trainer` of section 10 uses). They agree from the end of the warm-up on; they differ at the
# start: the first step of `transformers` runs at learning rate 0 (its multiplier is step / 6,
# from step 0), ours at 1/6, so that no step is wasted.

# %%
dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
hf_schedule = get_linear_schedule_with_warmup(dummy, num_warmup_steps=6, num_training_steps=100)
theirs = []
for _ in range(100):
    theirs.append(dummy.param_groups[0]["lr"])  # the multiplier the coming step uses
    dummy.step()
    hf_schedule.step()
ours = [warmup_then_decay(step, 6, 100) for step in range(100)]
print("first steps, ours:        ", " ".join(f"{m:.3f}" for m in ours[:7]))
print("first steps, transformers:", " ".join(f"{m:.3f}" for m in theirs[:7]))
assert theirs[0] == 0 and ours[0] == 1 / 6 and max(abs(a - b) for a, b in zip(ours[6:], theirs[6:])) < 1e-12

figure, axis = plt.subplots(figsize=(7, 3.2), layout="constrained")
axis.plot(range(100), ours, label="ours (helpers.training.warmup_then_decay)")
axis.plot(range(100), theirs, "--", label="transformers' linear schedule")
axis.set(title="Learning-rate schedule: 6 warm-up steps of 100", xlabel="optimizer step",
         ylabel="multiplier of the peak rate")
axis.legend(loc="upper right")
plt.show()

# %% [markdown]
# `helpers.training.TrainingLoop` is this loop plus what a long run needs: checkpoints and resume,
# micro-batches (gradient accumulation) that halve by themselves when a batch runs out of GPU
# memory, Hugging Face Accelerate for device placement, mixed precision and several processes
# (notebook 06), and a history for plots. A loop nobody checks drifts, so we run both for three
# steps on the same batches from the same weights and compare the weights they end with.
#
# The check runs in float64. In float32 the two runs can differ in the last bits on some CPUs
# (the order of additions inside a matrix product may depend on the machine), and Adam divides
# each gradient by its own size, so a gradient that is zero in truth but 1e-9 by rounding moves
# its weight by a good part of the learning rate. In float64 that rounding noise stays far below
# Adam's epsilon, and any difference above 1e-9 means the two loops compute different things.

# %%
# NBVAL_IGNORE_OUTPUT
check_batches = [collator([{"input_ids": b} for b in train_blocks[i:i + 8]]) for i in range(0, 24, 8)]
check_config = TrainConfig(steps=3, learning_rate=profile.mlm_learning_rate, seed=profile.seed, log_every=1)

by_hand = copy.deepcopy(model).double()
hand_losses = train_by_hand(by_hand, check_batches, steps=3, learning_rate=check_config.learning_rate,
                            seed=check_config.seed)
with_helper = copy.deepcopy(model).double()
helper_history = TrainingLoop(with_helper, masked_only_loss, check_config).fit(lambda epoch: check_batches)
worst = max((a - b).abs().max().item() for a, b in zip(by_hand.parameters(), with_helper.parameters()))
print("losses by hand    :", [round(x, 4) for x in hand_losses])
print("losses with helper:", [round(h["loss"], 4) for h in helper_history])
print(f"largest parameter difference after 3 steps: {worst:.1e}")
assert worst < 1e-9
assert all(math.isclose(h["loss"], loss, rel_tol=1e-5) for h, loss in zip(helper_history, hand_losses))
del by_hand, with_helper

# %% [markdown]
# ## 7. Training: the new head first, then the whole model
#
# Now the real run, with the settings of the profile. All blocks have the same length, so the
# length-grouped batches of notebook 02 have nothing to group here (they matter in notebook 04);
# each epoch simply shuffles the blocks, with a seed per epoch. The collator masks each batch when
# the step draws it. Four times per phase the helper measures held-out perplexity on the fixed
# mask; the curves below are redrawn as training goes.
#
# **A new head on a pretrained encoder.** At the `cpu` profile the MLM head starts from random
# weights. Trained together with the encoder at the high learning rate a new layer needs, its
# large, arbitrary early gradients flow into the pretrained encoder and shake it: the encoder is
# what notebook 04 keeps, the head is thrown away. The remedy the literature names (gradual
# unfreezing, Howard & Ruder 2018; linear probing then fine-tuning, Kumar et al. 2022) is to
# train the new head alone first, with the encoder frozen, then the whole model at a lower rate.
# We follow it without testing it here (no control run trains both from the start). It is also
# cheap: with the encoder frozen, no gradient flows back through it. And it shows what a probe on
# the frozen encoder's features reaches before the encoder itself moves: **how much of the drop
# comes before the encoder learns anything of the language of reviews?** (How the fall splits
# between the phases depends on which runs first.) At the `gpu` profile the head comes pretrained
# and there is no first phase.
#
# Checkpoints go to the work folder (`$TUTORIAL_WORKDIR`, by default `~/.cache/bert-imdb-tutorial`).
# **If the run is interrupted, re-run this cell**: it resumes from the last checkpoint and ends
# with exactly the weights an unbroken run would have (a unit test checks this). Only the latest
# checkpoint is kept, and it is deleted when the run finishes (at the `gpu` profile a checkpoint of
# bert-base with its MLM head and AdamW's state is about 1.3 GB; on Colab it stays on the
# machine's disk, and only the finished encoder goes to Google Drive).

# %%
# NBVAL_IGNORE_OUTPUT
def masked_block_batches(epoch):
    """One epoch of shuffled blocks, masked by the collator as each batch is drawn."""
    order = random_batches(len(train_blocks), profile.mlm_batch_size, seed=profile.seed + epoch)
    return DataLoader(train_blocks, batch_sampler=order, collate_fn=lambda rows: collator(
        [{"input_ids": r} for r in rows]))


def held_out_perplexity(model):
    return {"perplexity": perplexity(model, eval_batches, device)}


def run_phase(model, name, steps, learning_rate):
    """Train the model's trainable weights for `steps` with checkpoints under 03_<name>; return model, history."""
    quarter = math.ceil(steps / 4)  # four evaluations at most, the last at the end (steps // 4 gives 5 for 10 steps)
    config = TrainConfig(steps=steps, learning_rate=learning_rate, precision=profile.precision, seed=profile.seed,
                         log_every=max(1, steps // 10), checkpoint_every=quarter, eval_every=quarter)
    curve = LiveCurve(f"MLM fine-tuning: {name}", right="perplexity",
                      right_label="held-out perplexity (log scale)", right_log=True)

    def report(history):
        curve(history)
        last = history[-1]
        extra = f", held-out perplexity {last['perplexity']:,.1f}" if "perplexity" in last else ""
        print(f"{name}: step {last['step']:>4}/{steps}: loss {last['loss']:.3f}, lr {last['learning_rate']:.1e}, "
              f"{last['samples_per_second']:.1f} blocks/s, {last['seconds']:.0f} s{extra}", flush=True)

    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    identity = {"data": data_fingerprint(train_blocks), "model_revision": profile.model_revision,
                "trainable": data_fingerprint(trainable), "head_steps": profile.mlm_head_steps}
    trainer = TrainingLoop(model, masked_only_loss, config, checkpoint_dir=work_dir(profile) / f"03_{name.split()[0]}",
                           identity=identity)
    history = trainer.fit(masked_block_batches, evaluate=held_out_perplexity, on_log=report)
    return trainer.accelerator.unwrap_model(trainer.model), history


model.load_state_dict(pretrained_state)
print(f"checkpoints in {work_dir(profile)}")
perplexity_head_only, head_seconds = None, 0.0
if profile.mlm_head_steps:  # phase 1: the new head alone (its dense layer, LayerNorm and vocabulary bias)
    model.bert.requires_grad_(False)  # the encoder, and the output projection tied to its embeddings, stay pretrained
    model, head_history = run_phase(model, "head alone", profile.mlm_head_steps, profile.mlm_head_learning_rate)
    model.bert.requires_grad_(True)
    perplexity_head_only, head_seconds = head_history[-1]["perplexity"], head_history[-1]["seconds"]
model, history = run_phase(model, "whole model", profile.mlm_steps, profile.mlm_learning_rate)
train_minutes = (head_seconds + history[-1]["seconds"]) / 60
print(f"{profile.mlm_head_steps} head-only + {profile.mlm_steps} whole-model steps in {train_minutes:.1f} min "
      f"on {device}")

# %% [markdown]
# ## 8. After training
#
# The same held-out blocks under the same mask, and the same prompts:

# %%
# NBVAL_IGNORE_OUTPUT
perplexity_after = perplexity(model, eval_batches, device)
guesses_after = fill_mask(model, tokenizer, prompts)
print(f"held-out perplexity: {perplexity_before:,.1f} -> {perplexity_after:,.1f} "
      f"({perplexity_before / perplexity_after:,.0f}x lower)")
if perplexity_head_only is not None:
    head_share = math.log(perplexity_before / perplexity_head_only) / math.log(perplexity_before / perplexity_after)
    print(f"after the head alone: {perplexity_head_only:,.1f}, so the new head accounts for {head_share:.0%} of the "
          f"drop in cross-entropy (log perplexity) and the encoder's own training for the other {1 - head_share:.0%}")
if profile.name == "gpu":
    print("published anchor (DistilBERT on IMDB, Hugging Face course ch. 7): 21.8 -> 11.3")
print(pd.DataFrame({"prompt": prompts, "top 5 before": [" ".join(g) for g in guesses_before],
                    "top 5 after": [" ".join(g) for g in guesses_after]}).to_string())

# %% [markdown]
# The claims of this notebook, checked. Perplexity must fall: at the `cpu` profile, where the head
# starts from noise, at least 100-fold; at the `gpu` profile, where BERT already knows English, it
# simply must fall.
#
# Fill-mask guesses that look like words prove little: a model that ignores the context and always
# answers the most frequent token of the training text (a *unigram* model) also "guesses a common
# word". So the bar is that model. On the held-out masked tokens, how often is the top guess right,
# for the unigram model and for ours? And do our guesses change with the prompt, where the unigram
# model's never do?

# %%
# NBVAL_IGNORE_OUTPUT
token_counts = Counter(t for block in train_blocks for t in block[1:-1])  # [CLS] and [SEP] are never masked
most_frequent = max(token_counts, key=token_counts.get)
targets = torch.cat([b["labels"][b["labels"] != -100] for b in eval_batches])
unigram_top1 = float((targets == most_frequent).double().mean())
top1_after = masked_top1_accuracy(model, eval_batches, device)
print(f"top guess right on the {len(targets):,} held-out masked tokens: unigram model (always "
      f"{tokenizer.convert_ids_to_tokens(most_frequent)!r}) {unigram_top1:.1%}, before training {top1_before:.1%}, "
      f"after {top1_after:.1%}")
print(f"different top guesses across the {len(prompts)} prompts: {len({g[0] for g in guesses_before})} before, "
      f"{len({g[0] for g in guesses_after})} after (a unigram model: 1)")
assert perplexity_after < perplexity_before / (100 if profile.name == "cpu" and not session.smoke else 1)
session.expect(top1_after > unigram_top1, "the adapted model's top guess beats the unigram model's on held-out tokens")
if perplexity_head_only is not None:
    session.expect(perplexity_after < perplexity_head_only < perplexity_before,
                   "the head alone lowers the perplexity, and training the encoder lowers it further")
session.expect(len({g[0] for g in guesses_after}) >= len(prompts) // 2,
               "the top guess depends on the prompt (at least 3 different ones for 6 prompts)")

# %% [markdown]
# **What the `cpu` run shows, and what it does not.** In the committed run the new head alone
# took the held-out perplexity from about 51,000 to about 800, a little below the unigram model of
# exercise 1 (about 870): three quarters of the fall in cross-entropy came in the head-only phase,
# a new head on frozen contextual features, which is a probe of what the encoder already knows
# rather than a frequency table (it beats the unigram model), and the share depends on which phase
# runs first. The encoder's own 100 steps took it the rest of the way, to about 220, and made the
# top guess right for about 20 % of the held-out masked tokens, where always answering "the" is
# right for 4 %. (The printed lines above are the measurement; these are rounded.) That is far
# from a real masked language model: DistilBERT, with the head it was pretrained with, scores a
# perplexity of 21.8 on IMDB reviews, and 11.3 after domain adaptation (Hugging Face course,
# chapter 7), after pretraining on billions of words. (The stray `t` for "i would [MASK]
# recommend" is the end of "don ' t", which the uncased tokenizer splits at the apostrophe.) At the `cpu` profile this
# notebook teaches the method; whether its encoder helps the classifier is answered over several
# seeds by `benchmarks/results/seeds.md`, which notebook 04 quotes.

# %% [markdown]
# ## 9. Save the adapted encoder
#
# A classifier built on it needs the encoder, not the MLM head (`helpers.classification.new_classifier(profile,
# folder)` takes the folder). `model.bert` is a `BertModel`; we save it with
# its tokenizer in safetensors format, into a fresh folder that replaces the old one only once
# every file is written (a crash never leaves half a model behind).

# %%
# NBVAL_IGNORE_OUTPUT
encoder_dir = adapted_encoder_dir(profile)
save_atomically(model.bert, tokenizer, encoder_dir)
for path in sorted(encoder_dir.iterdir()):
    print(f"{path.name:<24} {path.stat().st_size / 1e6:8.1f} MB")
assert (encoder_dir / "model.safetensors").exists()

# %% [markdown]
# ## 10. The same with the `Trainer` API
#
# Hugging Face's `Trainer` wraps the same ingredients behind `TrainingArguments`: the names map
# one to one onto our `TrainConfig`, with two details. `warmup_steps` takes our warm-up *fraction*,
# a float: in transformers 5 a value below 1 is read as a share of the steps (the job of the
# former `warmup_ratio`). And its schedule starts the first step at learning rate 0, where ours
# starts at 1/warm-up (the figure of section 6). It computes the full-vocabulary loss, so each
# step is slower and needs more memory; we run three steps of half batches from the pretrained
# weights to show the call.

# %%
# NBVAL_IGNORE_OUTPUT
from transformers import Trainer, TrainingArguments  # noqa: E402

with tempfile.TemporaryDirectory() as output_dir:
    arguments = TrainingArguments(
        output_dir=output_dir, max_steps=3, per_device_train_batch_size=profile.mlm_batch_size // 2,
        learning_rate=check_config.learning_rate, warmup_steps=check_config.warmup_fraction,
        lr_scheduler_type="linear", weight_decay=check_config.weight_decay, max_grad_norm=check_config.max_grad_norm,
        bf16=profile.precision == "bf16", fp16=profile.precision == "fp16",
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, seed=profile.seed,
        use_cpu=device.type == "cpu",
    )
    stock = load_pretrained(BertForMaskedLM, profile, attention_probs_dropout_prob=0.0)
    hf_trainer = Trainer(model=stock, args=arguments, data_collator=collator,
                         train_dataset=[{"input_ids": b} for b in train_blocks[:3 * profile.mlm_batch_size // 2]])
    result = hf_trainer.train()
print(f"Trainer: 3 steps, {result.metrics['train_runtime']:.1f} s, mean loss {result.training_loss:.3f}")
del stock, hf_trainer

# %% [markdown]
# ## 11. Exercises
#
# **Exercise 1.** How good is a perplexity of a hundred or two? Compute the perplexity of the
# simplest model there is: one that ignores the context and always predicts each token with its
# frequency in the training blocks (add one to every count so no token has probability zero).
# Score it on the same masked held-out tokens.

# %% tags=["solution"]
# NBVAL_IGNORE_OUTPUT
counts = torch.bincount(torch.tensor([t for b in train_blocks for t in b]), minlength=len(tokenizer)).double() + 1
log_probability = (counts / counts.sum()).log()
targets = torch.cat([b["labels"][b["labels"] != -100] for b in eval_batches])
unigram_perplexity = math.exp(-log_probability[targets].mean().item())
print(f"unigram perplexity {unigram_perplexity:,.0f} vs the adapted model's {perplexity_after:,.1f}")
session.expect(perplexity_after < unigram_perplexity, "the adapted model beats a unigram model")

# %% [markdown]
# **Exercise 2.** Mask 40 % of the held-out tokens instead of 15 % (a fixed mask again) and
# measure the adapted model's perplexity. Is it higher or lower, and why?

# %% tags=["solution"]
# NBVAL_IGNORE_OUTPUT
heavy = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.4)
heavy_perplexity = perplexity(model, fixed_eval_batches(eval_blocks, heavy, 32, seed=profile.seed), device)
print(f"perplexity with 15 % masked: {perplexity_after:,.1f}; with 40 % masked: {heavy_perplexity:,.1f}")
session.expect(heavy_perplexity > perplexity_after, "with 40 % masked the guesses get worse (less context)")
# %% [markdown]
# Higher: with 40 % of the tokens hidden, each guess has less context to go on.

# %% [markdown]
# **Exercise 3.** On 50 held-out reviews, among the words made of several pieces that had at least
# one piece chosen, what share was masked only *in part*, with token masking and with whole-word
# masking? Why does whole-word masking make the task harder?

# %% tags=["solution"]
def partly_masked_share(collate, seed=0):
    """Return the share of multi-piece words with a chosen piece whose other pieces were not all chosen."""
    torch.manual_seed(seed)
    encoded = tokenizer(eval_texts[:50], return_offsets_mapping=True, truncation=True, max_length=block_size,
                        padding="max_length")
    labels = collate([{k: encoded[k][i] for k in encoded} for i in range(len(encoded["input_ids"]))])["labels"].tolist()
    touched = partly = 0
    for ids, row in zip(encoded["input_ids"], labels):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        starts = [i for i, t in enumerate(tokens) if not t.startswith("##")] + [len(tokens)]
        for first, end in zip(starts, starts[1:]):
            chosen = [row[i] != -100 for i in range(first, end)]
            if end - first > 1 and any(chosen):
                touched += 1
                partly += not all(chosen)
    return partly / touched


token_level = partly_masked_share(DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15))
word_level = partly_masked_share(DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, whole_word_mask=True))
print(f"multi-piece words masked only in part: {token_level:.0%} (token masking), {word_level:.0%} (whole words)")
assert word_level == 0 and token_level > 0.5
# %% [markdown]
# With token masking, a long word is almost always hidden in part, and the visible pieces give
# the rest away (`un [MASK] ##able`). Whole-word masking hides all of its pieces, so the model must
# infer the word from the sentence around it.

# %% [markdown]
# ## Summary
#
# The objective, the blocks, the fixed mask and the loop are all a few lines each; what this
# notebook measured to make the run faster is projecting only masked positions (section 5;
# notebook 05 measures attention dropout's cost on a CPU). A new head is trained alone first, the
# usual precaution so that its first, arbitrary gradients do not shake the encoder (we ran no
# control that trains both from the start, so this notebook does not show that it helps), and that
# phase shows how much of the perplexity's fall a probe on the frozen encoder gets. The adapted
# encoder now waits in the models folder for notebook 04. The line below is what CI records for
# this notebook.

# %%
summary = print_summary(
    session, notebook="03_mlm_finetuning",
    perplexity_before=round(perplexity_before, 1), perplexity_after=round(perplexity_after, 1),
    masked_only_step_speedup=round(masked_only_step_speedup, 2), train_minutes=round(train_minutes, 2),
    steps=profile.mlm_steps, head_steps=profile.mlm_head_steps, block_size=block_size,
    perplexity_head_only=round(perplexity_head_only, 1) if perplexity_head_only else None,
    top1_accuracy=round(top1_after, 4), unigram_top1_accuracy=round(unigram_top1, 4),
)
