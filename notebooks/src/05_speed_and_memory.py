# %% [markdown]
# # 05 · Where do the seconds and the megabytes go? A faster, leaner training step
#
# {{COLAB_BADGE}}
#
# **What you will learn.** Notebook 04 trained its classifier with a recipe whose speed was chosen,
# not given. Here is how it was found and what it is worth: where one training step spends its time
# (PyTorch's profiler), six levers pulled one at a time and timed in turns, how many FLOPs a step
# costs and what share of a GPU's peak a run can reach, what cuts the memory of a step that does
# not fit, and how a training loop leaks memory step after step (and the one-line fixes).
#
# **What you need.** Reading: about 30 minutes. Nothing from the earlier notebooks: every step
# here trains a fresh classifier on a handful of reviews. Running at the `cpu` profile: about
# 1.7 minutes on 2 cores with bf16 (the committed run's time is in its last line). At the `gpu` profile the
# profiler and the levers are skipped (they are CPU levers; on a GPU the step is matrix products in
# fused kernels), and the FLOP arithmetic and the memory measurements run on the card.

# %% [markdown]
# As in every notebook, the first cell picks the device and the profile and prints what this
# notebook uses of it; then the training reviews, cut to the profile's length (notebook 04,
# section 2). The stored outputs come from a `cpu` run.

# %%
import numpy as np
import torch
from transformers import AutoTokenizer

from helpers.batching import pad_batch
from helpers.classification import (
    BertForReviewClassification,
    classification_loss,
    encode,
    new_classifier,
    predict_logits,
)
from helpers.data import load_reviews, validation_split
from helpers.device import autocast
from helpers.measure import (
    alternating_medians,
    live_bytes_after_each,
    peak_tensor_bytes,
    peak_tflops,
    profile_table,
    training_flops_per_token,
)
from helpers.models import load_pretrained
from helpers.session import print_summary, start_notebook

session = start_notebook(uses=("model_id", "max_length", "batch_size", "precision", "seed", "dropout",
                               "attention_dropout", "attention_kernel", "freeze_word_embeddings"))
profile, device = session.profile, session.device
fit_split, _ = validation_split(load_reviews(profile)["train"], profile.validation_fraction, profile.seed)
train_texts, train_labels = list(fit_split["text"]), np.array(fit_split["label"])
max_length = profile.max_length
tokenizer = load_pretrained(AutoTokenizer, profile)
encoded_train = encode(tokenizer, train_texts, max_length)
print(f"{len(encoded_train):,} training reviews, cut to {max_length} tokens (head+tail)")

# %% [markdown]
# ## 1. Where do the seconds go? Profile one step
#
# Before making training faster, measure it. PyTorch's profiler times every operator of one
# training step (forward, backward, AdamW). We profile the stock setup, as
# `BertForSequenceClassification.from_pretrained` gives it: dropout 0.1 on the hidden states and
# on the attention weights, PyTorch's fused attention (SDPA), every weight trained, AdamW looping
# over the weight tensors one by one, 512 tokens, bf16 autocast where the CPU has it.
#
# At the `cpu` profile this section runs on the processor at hand; at the `gpu` profile the step
# is dominated by matrix products in fused kernels and it is skipped (the levers below are CPU
# levers).

# %%
# NBVAL_IGNORE_OUTPUT
cpu_levers = profile.name == "cpu"
if cpu_levers:
    at_512 = encode(tokenizer, train_texts, 512)
    length_order = np.argsort([len(ids) for ids in at_512])
    lever_rows = length_order[int(0.7 * len(length_order)):][:profile.batch_size]  # at the 70th percentile of length
    batch_512 = pad_batch([at_512[i] for i in lever_rows], tokenizer.pad_token_id, train_labels[lever_rows].tolist())
    stock = {"num_labels": 2, "attn_implementation": "sdpa"}

    def training_step(options, batch, fused=False, freeze_embeddings=False):
        """Return a function that runs one training step of a fresh classifier built with `options`."""
        torch.manual_seed(profile.seed)
        classifier = load_pretrained(BertForReviewClassification, profile, **options).train()
        classifier.bert.embeddings.word_embeddings.requires_grad_(not freeze_embeddings)
        optimizer = torch.optim.AdamW([p for p in classifier.parameters() if p.requires_grad], lr=1e-5,
                                      fused=fused or None)

        def step():
            with autocast(device, profile.precision):
                loss = classification_loss(classifier, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    stock_step = training_step(stock, batch_512)
    stock_step()  # warm-up: AdamW's state, the allocator
    print(profile_table(stock_step))  # helpers.measure: torch.profiler, its native log lines silenced
    del stock_step
else:
    print("gpu profile: skipped (section 3 computes the share of the card's peak FLOP/s instead)")

# %% [markdown]
# Read the table from the top. In the committed run (a 2-core CPU with bf16) the stock step spent
# 28 % of its time in `bernoulli_` (drawing dropout masks, the largest over the whole T x T score
# matrix of every head; a fifth to 30 % on the 2-core CPUs we ran it on), about a quarter in
# `bmm`, `mul` and `_softmax` (31 % with softmax's backward: attention computed the slow way,
# because attention dropout keeps SDPA off its fused path), and much of the rest (23 %) in
# `mm`/`addmm` (the linear layers: the work we cannot avoid). AdamW's update, one weight tensor at
# a time, half of the weights in the 11.7 M-parameter token-embedding matrix, comes further down
# (below the rows printed).
#
# ## 2. The levers, one at a time
#
# Each of those points to a lever:
#
# 1. **No attention dropout.** With it, SDPA on a CPU leaves its fused path and draws a mask over
#    the whole T x T attention matrix of every head.
# 2. **No hidden dropout.** One short epoch of fine-tuning barely overfits; the masks cost time.
# 3. **Fused AdamW** (`fused=True`, a CPU kernel since PyTorch 2.4): one pass over all weights
#    instead of a dozen small operations per tensor. The same update, up to rounding.
# 4. **Frozen token embeddings**: the 30,522 x 384 matrix is half of MiniLM's weights; its gradient
#    is dense and AdamW updates all of it every step, for the few hundred rows a batch uses.
# 5. **256 tokens instead of 512**: fewer tokens per review, and attention's cost grows with the
#    square of the length.
# 6. **Attention written out ("eager") instead of SDPA**, under bf16 autocast only: at 256 tokens
#    and a head size of 32, PyTorch's CPU flash-attention kernel in bf16 was slower than two plain
#    matrix products (its backward recomputes the attention in blocks); at 512 tokens, and in fp32
#    at either length, it is the other way round.
#
# The next cell adds them one at a time and times one step of each setup in turns (median of
# three, after a warm-up); each line says what its lever bought. Expect levers 1, 2 and 5 to show
# on any CPU. Lever 6 depends on the CPU: with bf16 autocast on a CPU that has bf16 (where the
# profile's recipe was chosen, and in the committed run) the written-out attention was faster at
# 256 tokens; in fp32, on a CPU without bf16, it was slower than SDPA (0.73x of its speed in an
# earlier build). So the profile takes the kernel by precision (`helpers.profile.fastest_attention`):
# eager with bf16, SDPA in fp32, for training (scoring always runs SDPA: see below), and the last line
# measures the recipe it chose. Levers 3 and 4 are small on this model (a few per cent either way in
# our runs: 1.02x and 1.01x in the committed run, 1.04x and 1.02x in an earlier fp32 run, 0.95x for
# the frozen embeddings in another, which three timings cannot tell from noise). We keep the fused
# AdamW because it is the same update, and the frozen embeddings because they spare AdamW's two
# moments for 11.7 M weights; whether freezing them costs accuracy was not measured on its own. All
# steps train on the same 16 reviews, taken at the 70th percentile of length, long enough that
# cutting them to fewer tokens matters (for the shorter half of the reviews, lever 5 changes
# nothing). The whole effect on a real run is the training time of notebook 04, section 4: 214 s in
# its committed run on this AMD EPYC (209, 222 and 199 s for the same steps in the three builds
# before), about 140 s on an earlier 2-core Intel CPU with bf16, against 906 s there for the
# earlier recipe (512 tokens, 2 epochs, SDPA; its attention dropout was already off, none of the
# other levers was pulled); the committed run prints its own.

# %%
# NBVAL_IGNORE_OUTPUT
if cpu_levers:
    quiet = {**stock, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    batch_recipe = pad_batch([encoded_train[i] for i in lever_rows], tokenizer.pad_token_id,
                             train_labels[lever_rows].tolist())
    setups = {  # each adds one lever to the line above it
        "stock, 512 tokens": training_step(stock, batch_512),
        "+ no attention dropout": training_step({**stock, "attention_probs_dropout_prob": 0.0}, batch_512),
        "+ no hidden dropout": training_step(quiet, batch_512),
        "+ fused AdamW": training_step(quiet, batch_512, fused=True),
        "+ frozen token embeddings": training_step(quiet, batch_512, fused=True, freeze_embeddings=True),
    }
    setups[f"+ {max_length} tokens"] = training_step(quiet, batch_recipe, fused=True, freeze_embeddings=True)
    setups["+ eager attention"] = training_step({**quiet, "attn_implementation": "eager"}, batch_recipe,
                                                fused=True, freeze_embeddings=True)
    step_seconds = alternating_medians(setups, repeats=3)
    previous = None
    for name, seconds in step_seconds.items():
        bought = f"{previous / seconds:.2f}x" if previous else ""
        print(f"{name:<28} {seconds:5.2f} s per step {bought:>7}")
        previous = seconds
    recipe = "+ eager attention" if profile.attention_kernel == "eager" else f"+ {max_length} tokens"
    lever_speedup = step_seconds["stock, 512 tokens"] / step_seconds[recipe]
    print(f"the profile's recipe ({profile.precision}, {profile.attention_kernel} attention): "
          f"{lever_speedup:.1f}x faster per step than the stock setup")
    session.expect(lever_speedup > 1.5, "the levers make a training step at least 1.5x faster")
    del setups
else:
    lever_speedup = None
    print("gpu profile: skipped")

# %% [markdown]
# Scoring has no backward pass, and there the two attention kernels trade places: the written-out
# one, which trains faster under bf16 on a small CPU (the last lever above), keeps every head's
# score matrix of every review in the batch, and the larger the batch, the more that costs. Both
# kernels, timed in turns on 64 training reviews, in batches of 16 (what `predict_logits` uses on a
# CPU: in `benchmarks/results/batching.md` as fast as 8 or 32 and faster than 64) and of 64:

# %%
# NBVAL_IGNORE_OUTPUT
scorer = session.place(new_classifier(profile))  # untrained: the time does not depend on the weights
kernel_seconds = alternating_medians({(kernel, size): lambda kernel=kernel, size=size: predict_logits(
    scorer, encoded_train[:64], tokenizer.pad_token_id, batch_size=size, precision=profile.precision,
    attention=kernel) for size in (16, 64) for kernel in ("eager", "sdpa")}, repeats=2)
for size in (16, 64):
    eager, sdpa = kernel_seconds[("eager", size)], kernel_seconds[("sdpa", size)]
    print(f"batches of {size}: eager {64 / eager:.0f} reviews/s, sdpa {64 / sdpa:.0f} reviews/s; "
          f"SDPA scores {eager / sdpa:.2f}x as fast")

# %% [markdown]
# So `predict_logits` scores with SDPA whatever kernel the model trains with: in the committed
# run it scored 1.18x as fast as the written-out kernel at 16 reviews per batch and 1.92x at 64;
# on a GPU, where batches are larger still, we expect the gap to grow (not measured here).

# %% [markdown]
# ## 3. FLOPs, and the share of the peak
#
# **Throughput.** Notebook 04's training cell prints samples and tokens per second, and on a GPU
# the share of the card's peak FLOP/s it reaches: a forward and backward pass costs about 6 FLOPs per
# parameter per token (2 forward, 4 backward) plus 12 x layers x length x width for attention's
# two matrix products (`helpers.measure.training_flops_per_token`). For `bert-base-uncased` (85 M
# parameters outside the embeddings) at about 300 real tokens per review that is about 0.55 GFLOP
# per token, 7 PFLOP per epoch of 25,000 reviews padded to 512, and about 4 PFLOP with length-grouped
# batches: the `gpu` recipe (1 epoch of 22,500 reviews at 512 tokens, batch 32, then the 25,000
# test reviews) is about 4.5 PFLOP (`make bench`, table `flops`). A T4 does not reach 40 % of its
# 65 fp16 TFLOP/s peak: published BERT-base fine-tuning runs sustain 9 to 15 TFLOP/s. At 12
# TFLOP/s the recipe takes about 6 minutes (8 at 9), inside the 20-minute target. Sun et al. (2019)
# report 94.6 % for BERT-base at 512 head+tail tokens; whether one epoch of this recipe reaches
# 93.5 % is not measured here. If the validation loss in notebook 04's curves is still falling
# at the end, a second epoch (`dataclasses.replace(profile, epochs=2)`, about 5 more minutes on a
# T4) is the first thing to try. These are estimates from the FLOP count, not measurements on a T4.
# On an A100 (bf16) the same arithmetic at an assumed 40 % of its 312 TFLOP/s gives under a minute,
# and an H200 measured half that share (`benchmarks/results/gpu_step.md`). If a batch does not
# fit, the training loop splits it into 2, 4, ... micro-batches and carries on with the same effective batch.
#
#
# The same arithmetic for this profile's model, and for the recipe's step timed in section 2 (at
# the `cpu` profile): the FLOP/s it reached on this processor.

# %%
# NBVAL_IGNORE_OUTPUT
model = new_classifier(profile)
non_embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
mean_tokens = float(np.mean([len(ids) for ids in encoded_train]))
flops_per_token = training_flops_per_token(non_embedding, model.config.num_hidden_layers, model.config.hidden_size,
                                           mean_tokens)
print(f"{non_embedding / 1e6:.1f} M parameters outside the embeddings, {mean_tokens:.0f} tokens per review on "
      f"average: {flops_per_token / 1e9:.2f} GFLOP per token for a forward and backward pass")
epoch_flops = flops_per_token * sum(len(ids) for ids in encoded_train)
print(f"one epoch of {len(encoded_train):,} reviews: {epoch_flops / 1e12:.1f} TFLOP (real tokens only)")
if cpu_levers:
    tokens_per_step = sum(len(encoded_train[i]) for i in lever_rows)
    reached = flops_per_token * tokens_per_step / step_seconds[recipe]
    print(f"the recipe's step: {tokens_per_step:,} real tokens in {step_seconds[recipe]:.2f} s, "
          f"{reached / 1e12:.2f} TFLOP/s on this processor")
elif device.type == "cuda" and peak_tflops(torch.cuda.get_device_name()):
    print(f"{torch.cuda.get_device_name()}: peak {peak_tflops(torch.cuda.get_device_name()):g} TFLOP/s; "
          "notebook 04's training log prints the share its run reached")
del model

# %% [markdown]
# ## 4. Out of memory? What helps, measured
#
# "CUDA out of memory" is the error readers meet most. Advice found online often says to
# *increase* the batch size; it is the other way round: the activations a training step keeps
# for its backward pass grow with the batch. We measure the peak memory held by the tensors of
# one step of a fresh classifier on 16 reviews of 256 tokens (`helpers.measure.peak_tensor_bytes`,
# which counts every tensor PyTorch's operators allocate, forward and backward, on any device),
# pulling one lever at a time:
#
# - **no gradients** (`torch.no_grad()` or `inference_mode()`, for evaluation and serving): no
#   activations are kept for a backward pass;
# - **half the batch, with gradient accumulation** (two micro-batches of 8 per step; the
#   `TrainingLoop` of `helpers.training` does this by itself on an out-of-memory error): the peak of
#   one micro-batch, for the same optimizer step;
# - **mixed precision** (bf16 autocast; fp16 on a T4): most activations in 2 bytes instead of 4;
# - **gradient checkpointing** (`model.gradient_checkpointing_enable()`): each layer's
#   activations are recomputed in the backward pass instead of kept, for about a third more compute.
#
# Two more need no measuring: free what you no longer need (`del model`, then
# `helpers.device.free_memory()`, which also empties PyTorch's CUDA cache), and shorten the
# sequences (`max_length`), since the activations grow with the tokens and attention's with their
# square.

# %%
# NBVAL_IGNORE_OUTPUT
probe_model = new_classifier(profile).to(device).train()
probe_batch = {k: v.to(device) for k, v in pad_batch(
    [[tokenizer.cls_token_id] + [2000 + i for i in range(254)] + [tokenizer.sep_token_id]] * 16,
    tokenizer.pad_token_id, labels=[0, 1] * 8).items()}


def step_megabytes(model, batch, grad=True, precision="fp32"):
    """Peak MB held by the tensors of one forward (and backward) pass."""
    def step():
        with autocast(device, precision):
            loss = classification_loss(model, batch)
        if grad:
            loss.backward()
        return loss.detach()

    model.zero_grad(set_to_none=True)
    return peak_tensor_bytes(step, grad=grad) / 2**20


half_precision = profile.precision  # bf16; fp16 on a T4; fp32 where neither pays off (or where it is forced)
memory = {"training step, fp32": step_megabytes(probe_model, probe_batch)}
memory["no gradients (evaluation)"] = step_megabytes(probe_model, probe_batch, grad=False)
memory["half batch + accumulation"] = step_megabytes(probe_model, {k: v[:8] for k, v in probe_batch.items()})
memory[f"{half_precision} autocast"] = step_megabytes(probe_model, probe_batch, precision=half_precision)
probe_model.gradient_checkpointing_enable()
memory["gradient checkpointing"] = step_megabytes(probe_model, probe_batch)
for name, megabytes in memory.items():
    print(f"{name:<28} {megabytes:8.0f} MB  ({megabytes / memory['training step, fp32']:.2f}x)")
baseline_mb = memory["training step, fp32"]
assert memory["no gradients (evaluation)"] < baseline_mb / 3 and memory["half batch + accumulation"] < 0.6 * baseline_mb
assert memory["gradient checkpointing"] < baseline_mb / 2
del probe_model

# %% [markdown]
# Each lever cuts the peak on its own (together they were not measured here). The mixed-precision
# line depends on the device: where neither bf16 nor fp16 pays off (a CPU without native bf16),
# the profile trains in float32 and the line repeats the first (`helpers.device.resolve_precision` decides).
#

# %% [markdown]
# ### Memory that grows step after step: leaks in a training loop
#
# A peak that is too high fails at once; a leak fails after hours. The usual leak in PyTorch is a
# tensor kept from every step that still holds its *graph*: the record of the step's operations,
# with the activations the backward pass would need. `helpers.measure.live_bytes_after_each` runs
# a step a few times and returns the bytes of the tensors the steps created that are still alive
# after each: a leak grows, a sound loop stays flat. Three loops on a batch of 8 reviews of 64
# tokens, each first run once so that AdamW's state and the caches exist before counting:
#
# - **training, the loss kept as a tensor** (as `total += loss` keeps it, instead of `loss.item()`);
# - **evaluation with gradients on, the loss kept as a tensor** (no `torch.no_grad()`);
# - **evaluation under `torch.no_grad()`, the loss kept as a number** (`.item()`): the fix.

# %%
# NBVAL_IGNORE_OUTPUT
leak_model = session.place(new_classifier(profile))
leak_batch = session.place(pad_batch([ids[:64] for ids in encoded_train[:8]], tokenizer.pad_token_id,
                                     labels=train_labels[:8].tolist()))
optimizer = torch.optim.AdamW([p for p in leak_model.parameters() if p.requires_grad], lr=1e-5)
kept = []


def train_summing_tensors():
    leak_model.train()
    loss = classification_loss(leak_model, leak_batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    kept.append(loss)  # the tensor, with its graph


def evaluate_with_gradients():
    leak_model.eval()
    kept.append(classification_loss(leak_model, leak_batch))  # the graph keeps every activation


def evaluate_fixed():
    leak_model.eval()
    with torch.no_grad():
        kept.append(classification_loss(leak_model, leak_batch).item())  # a Python float


growth = {}
for name, step in (("training, total += loss", train_summing_tensors),
                   ("evaluation, gradients on", evaluate_with_gradients),
                   ("evaluation, no_grad + .item()", evaluate_fixed)):
    step()  # AdamW's state and the allocator's first blocks are not a leak
    kept.clear()
    after = live_bytes_after_each(step, 5)
    growth[name] = (after[-1] - after[0]) / 4  # bytes per step, after the first
    kept.clear()
    print(f"{name:<30} {growth[name] / 2**20:8.3f} MB more after every step")
assert growth["evaluation, no_grad + .item()"] == 0, "the fixed loop keeps nothing"
assert growth["evaluation, gradients on"] > 100 * max(1.0, growth["training, total += loss"])

# %% [markdown]
# Read the three lines together. In evaluation with gradients on, every batch's activations stay
# alive for as long as its loss does: memory grows by megabytes per step until it runs out. Under
# `torch.no_grad()` with `.item()` nothing stays. The training loop that sums the loss *tensor*
# grows far less than the folklore says: `backward()` frees the activations its graph held, and
# what stays is the scalar and the graph's bookkeeping (not tensors, and not counted here). It is
# still worth fixing: the sum keeps every step's graph object chained to the next, and the first
# time it is logged without `.item()` (or kept in evaluation) the leak is the real one above.

# %% [markdown]
# ## 5. Exercises
#
# **Exercise 1.** The leak of section 4 in another form: keep the *logits* of every evaluation
# batch in a list for a confusion matrix later. Measure it with gradients on, then fix it with
# `.detach()` (or `torch.no_grad()`) and measure again.

# %% tags=["solution"]
# NBVAL_IGNORE_OUTPUT
logits_kept = []


def keep_logits(detach):
    leak_model.eval()
    logits = leak_model(input_ids=leak_batch["input_ids"], attention_mask=leak_batch["attention_mask"]).logits
    logits_kept.append(logits.detach() if detach else logits)


for detach in (False, True):
    keep_logits(detach)
    logits_kept.clear()
    after = live_bytes_after_each(lambda detach=detach: keep_logits(detach), 5)
    print(f"detach={detach}: {(after[-1] - after[0]) / 4 / 2**20:.3f} MB more after every step")
    logits_kept.clear()

# %% [markdown]
# With `.detach()` each step keeps only its 8 x 2 logits (64 bytes); without it, the whole graph.
#
# ## Summary
#
# The line below is what CI records for this notebook (measured speeds and memory vary from run to
# run, so nbval does not compare it).

# %%
# NBVAL_IGNORE_OUTPUT
summary = print_summary(
    session, notebook="05_speed_and_memory",
    lever_speedup=round(lever_speedup, 2) if lever_speedup else None,
    gflop_per_token=round(flops_per_token / 1e9, 3),
    memory_no_grad_ratio=round(memory["no gradients (evaluation)"] / baseline_mb, 3),
    memory_checkpointing_ratio=round(memory["gradient checkpointing"] / baseline_mb, 3),
    leak_mb_per_step=round(growth["evaluation, gradients on"] / 2**20, 3),
)
