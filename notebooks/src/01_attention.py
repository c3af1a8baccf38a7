# %% [markdown]
# # 01 · Attention from the formula
#
# {{COLAB_BADGE}}
#
# **What you will learn.** Every BERT layer starts with one line of math,
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V .$$
#
# We write it in a few lines of PyTorch, find out *why* it divides by $\sqrt{d_k}$, add the padding
# and causal masks, grow it into multi-head attention and prove it equals PyTorch's fused kernel.
# Then we see where attention sits in BERT's encoder block (the embeddings, residual connections,
# LayerNorm, the feed-forward layer) and recompute a real pretrained BERT by hand on a real movie
# review: one layer, then the whole encoder from the token ids. We end with what attention costs
# as sentences get longer.
#
# **What you need.** Reading: about 40 minutes. Running: nothing but a CPU. Measured on 2 CPU cores
# (the `cpu` profile): about 10 seconds and 1.4 GB of memory at the peak (the kernel process,
# measured with `getrusage`). On a Colab T4 (`gpu` profile, bert-base-uncased): about a minute
# besides the downloads, estimated, not measured (`benchmarks/results/colab_t4.md`).
#
# **Profiles.** Every notebook of the series runs at two scales, chosen automatically: `gpu` when
# CUDA is present (bert-base-uncased from the Hub, full IMDB), `cpu` otherwise (all-MiniLM-L6-v2
# installed from PyPI, stratified subsets of IMDB's official splits). Set `TUTORIAL_PROFILE=cpu` or `gpu` to
# choose yourself. The cell after the next one prints which profile this run uses.

# %% [markdown]
# First we pick the device, seed every random generator and print the library versions and the
# profile, so that a result can always be traced back to what produced it. The outputs stored in
# this notebook come from a `cpu` run; on a machine with a GPU (Colab's T4, say) your run takes the
# `gpu` profile, and its numbers will differ.

# %%
import math
import re

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from helpers.session import print_summary, start_notebook

session = start_notebook(uses=("model_id", "seed"))
device = session.device

# %% [markdown]
# ## 1. The formula on toy tensors
#
# Attention lets every position of a sequence look at every other position and take a weighted
# average of what it finds there. Each position asks a **query** $q$; each position offers a **key**
# $k$ (what it is about) and a **value** $v$ (what it passes on). The weight of key $j$ for query
# $i$ is how well they match, $q_i \cdot k_j$, turned into a probability distribution by a softmax.
#
# We start with a batch of one sequence of $T = 4$ tokens and $d_k = 8$ features, and name every
# shape as we go.

# %%
torch.manual_seed(0)
B, T, d_k = 1, 4, 8
q = torch.randn(B, T, d_k)  # (B, T, d_k): one query per position
k = torch.randn(B, T, d_k)  # (B, T, d_k): one key per position
v = torch.randn(B, T, d_k)  # (B, T, d_v), here d_v = d_k

scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, T, T): query i against key j
weights = scores.softmax(dim=-1)  # (B, T, T): each row is a distribution over keys
output = weights @ v  # (B, T, d_v): a weighted average of the values
print("scores ", tuple(scores.shape))
print("weights", tuple(weights.shape), "row sums:", weights.sum(-1).flatten().round(decimals=4).tolist())
print("output ", tuple(output.shape))
print(weights[0].round(decimals=3))

# %% [markdown]
# The three lines above are the whole idea. Here they are as one function; the `mask` argument
# (next sections) uses PyTorch's convention: `True` marks a query-key pair that may attend.

# %%
def attention(q, k, v, mask=None):
    """Return softmax(q k^T / sqrt(d_k)) v and the weights; mask: True where attending is allowed."""
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # blocked pairs get weight exp(-inf) = 0
    weights = scores.softmax(dim=-1)  # (..., T_q, T_k)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


out, w = attention(q, k, v)
assert torch.allclose(out, output) and torch.allclose(w.sum(-1), torch.ones(B, T))
print("attention(q, k, v) reproduces the three lines above; every row of weights sums to 1")

# %% [markdown]
# ## 2. Why divide by $\sqrt{d_k}$?
#
# If the entries of $q$ and $k$ are independent with mean 0 and variance 1, then
# $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$ is a sum of $d_k$ terms of variance 1, so its variance is
# $d_k$. Large dot products push the softmax into saturation: one key takes almost all the weight
# and the gradient through the others vanishes. Dividing by $\sqrt{d_k}$ brings the variance back
# to 1 whatever the width. We measure the three claims: the variance of $q \cdot k$, the largest
# softmax weight over 32 keys (1/32 would be uniform, 1 is one-hot), and the gradient that reaches
# the scores of the 31 keys that did not win (the mean absolute gradient of the weights against a
# random gradient arriving from above), with and without the scaling.

# %%
torch.manual_seed(0)
widths = [4, 16, 64, 256, 1024]
n_samples, n_keys = 20_000, 32
variance, max_w_scaled, max_w_unscaled, grad_scaled, grad_unscaled = [], [], [], [], []


def gradient_to_losers(scores):
    """Mean |d loss / d score| over the keys that did not get the largest weight, for a random upstream gradient."""
    scores = scores.clone().requires_grad_()
    upstream = torch.randn(scores.shape)  # (1000, 32): what the next layer sends back to the weights
    (gradient,) = torch.autograd.grad((scores.softmax(-1) * upstream).sum(), scores)
    losers = torch.ones_like(gradient, dtype=torch.bool).scatter_(1, scores.argmax(-1, keepdim=True), False)
    return gradient.abs()[losers].mean().item()


for width in widths:
    qs = torch.randn(n_samples, width)  # (N, d_k)
    ks = torch.randn(n_samples, width)  # (N, d_k)
    variance.append((qs * ks).sum(-1).var().item())
    queries = torch.randn(1000, width)  # (1000, d_k)
    keys = torch.randn(n_keys, width)  # (32, d_k)
    raw = queries @ keys.T  # (1000, 32)
    max_w_unscaled.append(raw.softmax(-1).max(-1).values.mean().item())
    max_w_scaled.append((raw / math.sqrt(width)).softmax(-1).max(-1).values.mean().item())
    grad_unscaled.append(gradient_to_losers(raw))
    grad_scaled.append(gradient_to_losers(raw / math.sqrt(width)))

print(f"{'d_k':>5} {'var(q.k)':>9} {'var/d_k':>8} {'max w, unscaled':>16} {'max w, scaled':>14} "
      f"{'grad to others, unscaled':>25} {'scaled':>7}")
for row in zip(widths, variance, max_w_unscaled, max_w_scaled, grad_unscaled, grad_scaled):
    print(f"{row[0]:>5} {row[1]:>9.1f} {row[1] / row[0]:>8.3f} {row[2]:>16.3f} {row[3]:>14.3f} "
          f"{row[4]:>25.4f} {row[5]:>7.4f}")

# %% [markdown]
# The variance grows in step with $d_k$ (the ratio stays near 1). Without scaling the largest
# weight climbs towards 1 (one-hot) as the width grows, and the gradient reaching the other keys
# shrinks with it (at $d_k$ = 1024 about fifteen times smaller than with scaling): those keys
# barely learn. With scaling both stay put. We assert all three with tolerances that hold for any
# random draw of this size.

# %%
assert all(0.9 < var / width < 1.1 for var, width in zip(variance, widths))
assert max_w_unscaled[-1] > 0.9, "without scaling, d_k = 1024 should be nearly one-hot"
assert max(max_w_scaled) - min(max_w_scaled) < 0.1, "with scaling, saturation should not depend on d_k"
assert grad_unscaled[-1] < grad_scaled[-1] / 10, "without scaling, the gradient to the other keys vanishes"
assert max(grad_scaled) < 1.5 * min(grad_scaled), "with scaling, it does not depend on d_k"

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
left.loglog(widths, variance, "o-", label="measured var(q·k)")
left.loglog(widths, widths, "k--", lw=1, label="d_k (theory)")
left.loglog(widths, [var / width for var, width in zip(variance, widths)], "s-", label="var(q·k / √d_k)")
left.set(title="Dot products grow with the width", xlabel="d_k (features per head)", ylabel="variance")
left.legend()
right.semilogx(widths, max_w_unscaled, "o-", label="softmax(q·k)")
right.semilogx(widths, max_w_scaled, "s-", label="softmax(q·k / √d_k)")
right.axhline(1 / n_keys, color="gray", ls=":", label="uniform (1/32)")
right.set(title="Without scaling the softmax saturates", xlabel="d_k (features per head)",
          ylabel="mean largest weight (of 32 keys)", ylim=(0, 1.05))
right.legend()
plt.show()

# %% [markdown]
# ## 3. Masks: padding and causal
#
# Two kinds of positions must be hidden from a query.
#
# * **Padding.** Reviews in a batch have different lengths; the short ones are padded with `[PAD]`
#   tokens so the batch is a rectangle. No query may attend to a pad key.
# * **Causal.** A model that generates text left to right (GPT) must not look ahead: query $i$
#   sees keys $0..i$ only. BERT is bidirectional and uses only the padding mask; we show the causal
#   mask because the difference is the heart of "encoder vs decoder".
#
# Blocked pairs get a score of $-\infty$ before the softmax, so their weight is exactly 0 and the
# remaining weights still sum to 1. Below: a batch of two sequences of 6 positions, the second
# padded after 4 real tokens.

# %%
torch.manual_seed(0)
T = 6
q = torch.randn(2, T, d_k)  # (B=2, T, d_k)
k = torch.randn(2, T, d_k)
v = torch.randn(2, T, d_k)
lengths = torch.tensor([6, 4])  # real tokens per sequence
pad_mask = (torch.arange(T)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, T_k): broadcast over queries
causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T_q, T_k): query i sees keys 0..i

_, w_none = attention(q, k, v)
_, w_pad = attention(q, k, v, pad_mask)
_, w_causal = attention(q, k, v, causal)
_, w_both = attention(q, k, v, pad_mask & causal)  # (B, T, T)

assert torch.all(w_pad[1, :, 4:] == 0), "no query may attend to the two pad keys"
assert torch.all(w_causal[:, causal.logical_not()] == 0), "no query may attend to a later key"
assert torch.allclose(w_both.sum(-1), torch.ones(2, T)), "rows still sum to 1"
print("padded sequence, weights on the two pad keys:", w_pad[1, :, 4:].abs().max().item())
print("causal, weight above the diagonal:", w_causal[:, ~causal].abs().max().item())

# %% [markdown]
# The heatmaps show the weights of the padded (second) sequence: rows are queries, columns keys.
# With the padding mask the last two columns are empty; with the causal mask everything above the
# diagonal is. (Rows 4 and 5 are pad queries: their outputs exist but are never used.)

# %%
from helpers.plotting import show_heatmaps

fig = show_heatmaps(
    [w_none[1], w_pad[1], w_causal[1], w_both[1]],
    titles=["no mask", "padding mask", "causal mask", "padding + causal"],
    suptitle="Masks set blocked attention weights to exactly zero (sequence of 4 tokens + 2 pads)",
)
plt.show()

# %% [markdown]
# ## 4. Multi-head attention
#
# One attention computes one weighted average per position: one "kind of relation". BERT runs $h$
# of them in parallel, each on its own learned projection of width $d_{head} = d_{model} / h$:
#
# 1. **project** the input $x$ (B, T, $d_{model}$) into $Q$, $K$, $V$ with three linear layers;
# 2. **split** each into $h$ heads: (B, $h$, T, $d_{head}$);
# 3. **attend** in every head at once (our `attention` broadcasts over the head axis);
# 4. **concatenate** the heads back to (B, T, $d_{model}$) and **project** with a fourth linear layer.
#
# The four projections are named `q_proj`, `k_proj`, `v_proj` and `out_proj` so that you can always
# see which is which.

# %%
class MultiHeadAttention(nn.Module):
    """Self-attention with n_heads heads: project, split heads, attend, concatenate, project."""

    def __init__(self, d_model, n_heads):
        super().__init__()
        assert d_model % n_heads == 0, "d_model must split evenly into heads"
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split_heads(self, x):
        batch, seq_len, _ = x.shape
        return x.view(batch, seq_len, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, d_head)

    def forward(self, x, mask=None):
        batch, seq_len, d_model = x.shape
        q = self.split_heads(self.q_proj(x))  # (B, H, T, d_head)
        k = self.split_heads(self.k_proj(x))  # (B, H, T, d_head)
        v = self.split_heads(self.v_proj(x))  # (B, H, T, d_head)
        context, weights = attention(q, k, v, mask)  # (B, H, T, d_head), (B, H, T, T)
        context = context.transpose(1, 2).reshape(batch, seq_len, d_model)  # (B, T, d_model)
        return self.out_proj(context), weights


torch.manual_seed(0)
d_model, n_heads = 768, 12  # the sizes of bert-base
mha = MultiHeadAttention(d_model, n_heads)
x = torch.randn(2, 10, d_model)  # (B, T, d_model)
y, w = mha(x)
n_params = sum(p.numel() for p in mha.parameters())
print("output", tuple(y.shape), "weights", tuple(w.shape))
print(f"parameters: {n_params:,} = 4 x (d_model^2 + d_model) = {4 * (d_model**2 + d_model):,}")
assert n_params == 4 * (d_model**2 + d_model)

# %% [markdown]
# The parameter count does not depend on the number of heads: splitting 768 features into 12 heads
# of 64 only changes how the same four matrices are read. In bert-base these 2.36 M parameters
# repeat in each of 12 layers.
#
# ## 5. Proof by comparison
#
# A hand-written version is only worth teaching if it is *right*. PyTorch ships attention as one
# fused function, `torch.nn.functional.scaled_dot_product_attention` (SDPA), with the same boolean
# mask convention. We compare on the device at hand, in fp32, without a mask and with both masks.

# %%
torch.manual_seed(0)
q, k, v = (torch.randn(2, 12, 64, 64, device=device) for _ in range(3))  # (B, H, T, d_head)
lengths = torch.tensor([64, 40], device=device)
pad = (torch.arange(64, device=device)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T)
causal = torch.ones(64, 64, dtype=torch.bool, device=device).tril()  # (T, T)

diff_vs_sdpa = {}
for name, mask in [("no mask", None), ("padding", pad), ("causal", causal)]:
    ours, _ = attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    diff_vs_sdpa[name] = (ours - theirs).abs().max().item()
    print(f"{name:>8}: max |ours - SDPA| = {diff_vs_sdpa[name]:.1e}")
max_abs_diff_vs_sdpa = max(diff_vs_sdpa.values())
assert max_abs_diff_vs_sdpa <= 1e-5

# %% [markdown]
# The multi-head module is checked against `torch.nn.MultiheadAttention`. PyTorch stores the three
# input projections stacked in one `in_proj_weight` (Q, then K, then V) and takes a
# `key_padding_mask` in the opposite convention (`True` = ignore); we copy our weights into it and
# compare outputs and (head-averaged) weights.

# %%
torch_mha = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
with torch.no_grad():
    torch_mha.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
    torch_mha.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
    torch_mha.out_proj.weight.copy_(mha.out_proj.weight)
    torch_mha.out_proj.bias.copy_(mha.out_proj.bias)

x_lengths = torch.tensor([10, 7])
x_pad = torch.arange(10)[None, :] < x_lengths[:, None]  # (B, T): True = real token
with torch.no_grad():
    ours, our_w = mha(x, x_pad[:, None, None, :])
    theirs, their_w = torch_mha(x, x, x, key_padding_mask=~x_pad)
diff_vs_torch_mha = (ours - theirs).abs().max().item()
print(f"max |ours - nn.MultiheadAttention| = {diff_vs_torch_mha:.1e} (outputs), "
      f"{(our_w.mean(1) - their_w).abs().max().item():.1e} (head-averaged weights)")
assert diff_vs_torch_mha <= 1e-5

# %% [markdown]
# ## 6. Inside a pretrained BERT
#
# Now the real thing. We load the profile's pretrained encoder (all-MiniLM-L6-v2 in `cpu`: 6
# layers, 12 heads of 32 features; bert-base-uncased in `gpu`: 12 layers, 12 heads of 64) with
# `attn_implementation="eager"`, because the default fused attention (SDPA) never materializes the
# weights and so cannot return them for plotting. We feed it a real review sentence next to a
# shorter one, so that padding is in play.

# %%
from transformers import AutoTokenizer, BertModel

from helpers.data import load_reviews
from helpers.models import load_pretrained

tokenizer = load_pretrained(AutoTokenizer, session.profile)
model = load_pretrained(BertModel, session.profile, attn_implementation="eager").to(device).eval()
config = model.config
print(f"{type(model).__name__}: {config.num_hidden_layers} layers, {config.num_attention_heads} heads, "
      f"d_model {config.hidden_size}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")

reviews = load_reviews(session.profile)["test"]
first_sentences = (re.split(r"(?<=[.!?])\s", text)[0] for text in reviews["text"])
sentence = next(s for s in first_sentences if 8 <= len(s.split()) <= 16)
batch = tokenizer([sentence, "A short one."], padding=True, return_tensors="pt").to(device)
tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
print(repr(sentence))
print(tokens)

# %% [markdown]
# Attention is one part of an encoder layer. The figure shows where it sits: the token ids become
# vectors by adding three learnt embeddings (one per token, one per position, one per segment, the
# "type" that tells BERT's two sentences apart) and normalising them; then each of the identical
# layers runs self-attention and a feed-forward layer (two Linear maps with a GELU between, the
# same for every token), each wrapped in a **residual connection** (its input is added to its
# output, so a layer learns a change rather than a whole new vector, and gradients have a short
# path back) and a **LayerNorm** (each token's vector rescaled to mean 0 and variance 1, then scaled
# and shifted by learnt weights). Attention is the only place where tokens exchange information; everything
# else works on each token alone.

# %%
from helpers.plotting import draw_encoder_block

fig = draw_encoder_block(config.num_hidden_layers, config.num_attention_heads, config.hidden_size,
                         config.intermediate_size)
plt.show()

# %% [markdown]
# We run the model once and keep every layer's input (`hidden_states`) and attention weights. Then
# we write one layer as a function of its own weights: the query/key/value projections (named
# `query`, `key`, `value` in the checkpoint), our `attention` with the padding mask, the output
# projection with the residual connection and LayerNorm, and the feed-forward block with its own.
# We check it on layer 2.

# %%
LAYER = 2
with torch.no_grad():
    outputs = model(**batch, output_hidden_states=True, output_attentions=True)
layer = model.encoder.layer[LAYER]
h = outputs.hidden_states[LAYER]  # (B, T, d_model): the input of this layer
B, T, _ = h.shape
H, d_head = config.num_attention_heads, config.hidden_size // config.num_attention_heads
mask = batch["attention_mask"].bool()[:, None, None, :]  # (B, 1, 1, T): True = real token


def encoder_layer_by_hand(layer, h, mask):
    """One BERT layer from its weights: attention + residual + LayerNorm, feed-forward + residual + LayerNorm."""
    B, T, _ = h.shape
    self_attn = layer.attention.self
    q = self_attn.query(h).view(B, T, H, d_head).transpose(1, 2)  # (B, H, T, d_head)
    k = self_attn.key(h).view(B, T, H, d_head).transpose(1, 2)  # (B, H, T, d_head)
    v = self_attn.value(h).view(B, T, H, d_head).transpose(1, 2)  # (B, H, T, d_head)
    context, weights = attention(q, k, v, mask)  # (B, H, T, d_head), (B, H, T, T)
    context = context.transpose(1, 2).reshape(B, T, H * d_head)  # (B, T, d_model)
    attended = layer.attention.output.LayerNorm(layer.attention.output.dense(context) + h)  # residual + norm
    ffn = layer.output.dense(F.gelu(layer.intermediate.dense(attended)))  # (B, T, d_model): 4x wider inside
    return layer.output.LayerNorm(ffn + attended), weights  # residual + norm: the layer's output


with torch.no_grad():
    by_hand, weights = encoder_layer_by_hand(layer, h, mask)

real = batch["attention_mask"].bool()  # compare on real tokens; pad rows are never used downstream
diff_weights = (weights - outputs.attentions[LAYER]).abs().max().item()
max_abs_diff_vs_model_layer = (by_hand - outputs.hidden_states[LAYER + 1])[real].abs().max().item()
print(f"layer {LAYER}: max |our weights - model's weights| = {diff_weights:.1e}")
print(f"layer {LAYER}: max |our output - model's output|   = {max_abs_diff_vs_model_layer:.1e}")
assert diff_weights <= 1e-5 and max_abs_diff_vs_model_layer <= 1e-4

# %% [markdown]
# Now the whole encoder from the token ids: the three embeddings added and normalised (dropout
# does nothing in evaluation mode), checked against the model's first hidden state, then every
# layer through `encoder_layer_by_hand`, checked against the model's last hidden state. Float32
# rounding grows a little with each layer, so the tolerance for the whole stack is looser than
# for one layer.

# %%
# NBVAL_IGNORE_OUTPUT
with torch.no_grad():
    ids = batch["input_ids"]  # (B, T)
    positions = torch.arange(ids.shape[1], device=device)[None, :]  # (1, T): 0, 1, 2, ... for every row
    types = batch.get("token_type_ids", torch.zeros_like(ids))  # (B, T): all 0, one segment per review
    parts = model.embeddings
    embedded = parts.LayerNorm(parts.word_embeddings(ids) + parts.position_embeddings(positions)
                               + parts.token_type_embeddings(types))  # (B, T, d_model)
    hidden = embedded
    for each_layer in model.encoder.layer:
        hidden, _ = encoder_layer_by_hand(each_layer, hidden, mask)
max_abs_diff_embeddings = (embedded - outputs.hidden_states[0])[real].abs().max().item()
max_abs_diff_whole_encoder = (hidden - outputs.last_hidden_state)[real].abs().max().item()
print(f"embeddings: max |ours - model's| = {max_abs_diff_embeddings:.1e}")
print(f"all {len(model.encoder.layer)} layers from the token ids: max |ours - model's| = "
      f"{max_abs_diff_whole_encoder:.1e} (outputs of size up to {outputs.last_hidden_state.abs().max().item():.1f})")
assert max_abs_diff_embeddings <= 1e-5 and max_abs_diff_whole_encoder <= 1e-3

# %% [markdown]
# Our four-line function *is* the attention inside BERT: the layer's output matches to float
# rounding. What do its heads look at? Heads are said to specialize: some attend to the previous
# or the next token, some to `[CLS]`/`[SEP]` (a common "no-op" for a head with nothing to do),
# some spread their weight out. Rather than take that on trust, we score every head of this layer
# on the review sentence (the first sequence of the batch, so no padding): its mean weight on the
# previous token, on the next token, on `[CLS]` and `[SEP]`, and the entropy of its weights as a
# share of the uniform distribution's (1: spread evenly).

# %%
weights_0 = outputs.attentions[LAYER][0]  # (H, T, T): the review sentence, no padding
patterns = {
    "previous token": torch.diagonal(weights_0, offset=-1, dim1=1, dim2=2).mean(-1),  # (H,)
    "next token": torch.diagonal(weights_0, offset=1, dim1=1, dim2=2).mean(-1),
    "[CLS] and [SEP]": (weights_0[:, :, 0] + weights_0[:, :, -1]).mean(-1),
    "spread out": -(weights_0 * weights_0.clamp_min(1e-12).log()).sum(-1).mean(-1) / math.log(weights_0.shape[-1]),
}
print(f"{'head':>4} " + " ".join(f"{name:>16}" for name in patterns))
for head in range(config.num_attention_heads):
    print(f"{head:>4} " + " ".join(f"{score[head].item():>16.2f}" for score in patterns.values()))
heads = []
for score in patterns.values():  # the highest-scoring head for each pattern, each head once
    heads.append(next(int(h) for h in score.argsort(descending=True) if int(h) not in heads))
print("plotted:", ", ".join(f"head {h} ({name}: {patterns[name][h].item():.2f})" for h, name in zip(heads, patterns)))

# %% [markdown]
# The four heads that score highest on each pattern, drawn. Read each title's score against the
# table: a head whose best pattern scores low (say under 0.3 for a neighbour) does not have that
# habit on this sentence, whatever the literature says about heads in general.

# %%
fig = show_heatmaps(
    [outputs.attentions[LAYER][0, head] for head in heads],
    titles=[f"head {head}: {name}" for head, name in zip(heads, patterns)],
    row_labels=tokens, col_labels=tokens, xlabel="key token", ylabel="query token",
    suptitle=f"Attention weights of four heads of {session.profile.name}-profile BERT on a real review",
)
plt.show()

# %% [markdown]
# ## 7. What attention costs
#
# The weight matrix has $T \times T$ entries per head, so time and memory of the hand-written
# version grow with the *square* of the sequence length. The fused SDPA kernel computes the same
# result in tiles and never stores the whole matrix (the FlashAttention idea), so its memory grows
# only linearly. We time both as $T$ doubles (one sequence, 12 heads of 64 features, fp32) and
# count the peak memory held by the tensors each allocates (`helpers.measure`, which sees every
# tensor created through PyTorch's operators, on CPU and GPU alike).
#
# Timings depend on the machine and its load: this cell's printed numbers are not compared by the
# tests, only the shape of the memory curve is asserted.

# %%
# NBVAL_IGNORE_OUTPUT
from helpers.measure import median_seconds, peak_tensor_bytes

lengths = [128, 256, 512, 1024, 2048] + ([4096, 8192] if device.type == "cuda" else [])
cost = {"hand-written": {"s": [], "MiB": []}, "SDPA": {"s": [], "MiB": []}}
for seq_len in lengths:
    q, k, v = (torch.randn(1, 12, seq_len, 64, device=device) for _ in range(3))  # (B, H, T, d_head)
    for name, fn in [("hand-written", lambda q=q, k=k, v=v: attention(q, k, v)[0]),
                     ("SDPA", lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v))]:
        with torch.no_grad():
            cost[name]["s"].append(median_seconds(fn, repeats=5, warmup=2))
        cost[name]["MiB"].append(peak_tensor_bytes(fn) / 2**20)
print(f"{'T':>5} {'hand ms':>8} {'SDPA ms':>8} {'ratio':>6} {'hand MiB':>9} {'SDPA MiB':>9} {'T² matrix MiB':>14}")
for i, seq_len in enumerate(lengths):
    hand, fused = cost["hand-written"], cost["SDPA"]
    print(f"{seq_len:>5} {hand['s'][i] * 1e3:>8.2f} {fused['s'][i] * 1e3:>8.2f} {hand['s'][i] / fused['s'][i]:>6.1f}"
          f" {hand['MiB'][i]:>9.1f} {fused['MiB'][i]:>9.2f} {12 * seq_len**2 * 4 / 2**20:>14.1f}")

# %% [markdown]
# On log-log axes a power law is a straight line whose slope is the exponent. The hand-written
# version's memory follows the dashed $T^2$ line of one 12-head weight matrix (it holds two such
# matrices at once: the scores and their softmax); SDPA's grows like $T$. We assert the memory
# slopes. SDPA saves memory, not arithmetic: it still computes every one of the $T^2$ scores, only
# tile by tile, so its *time* grows like $T^2$ as well once $T$ is long enough for the work to
# dominate (the dotted $T^2$ guide on the left; the time slopes are printed, not asserted, as
# timings depend on the machine).

# %%
def slope(xs, ys):
    """Return the log-log slope between the last two points (the exponent of a power law)."""
    return math.log(ys[-1] / ys[-2]) / math.log(xs[-1] / xs[-2])


memory_slope_hand = slope(lengths, cost["hand-written"]["MiB"])
memory_slope_sdpa = slope(lengths, cost["SDPA"]["MiB"])
print(f"memory grows like T^{memory_slope_hand:.2f} (hand-written) and T^{memory_slope_sdpa:.2f} (SDPA)")
print(f"time grows like T^{slope(lengths, cost['hand-written']['s']):.2f} (hand-written) and "
      f"T^{slope(lengths, cost['SDPA']['s']):.2f} (SDPA) between the two longest lengths")
assert 1.8 < memory_slope_hand < 2.2 and 0.8 < memory_slope_sdpa < 1.2

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name, marker in [("hand-written", "o-"), ("SDPA", "s-")]:
    left.loglog(lengths, [s * 1e3 for s in cost[name]["s"]], marker, label=name)
    right.loglog(lengths, cost[name]["MiB"], marker, label=name)
right.loglog(lengths, [12 * t**2 * 4 / 2**20 for t in lengths], "k--", lw=1, label="one T×T matrix, 12 heads")
anchor = cost["SDPA"]["s"][-1] * 1e3 / lengths[-1] ** 2  # a T² line through SDPA's longest point
left.loglog(lengths, [anchor * t**2 for t in lengths], "k:", lw=1, label="∝ T² (guide)")
left.set(title=f"Time per call ({device.type})", xlabel="sequence length T (tokens)", ylabel="milliseconds")
right.set(title="Peak tensor memory", xlabel="sequence length T (tokens)", ylabel="MiB")
for ax in (left, right):
    ax.set_xticks(lengths, [str(t) for t in lengths], minor=False)
    ax.minorticks_off()
    ax.legend()
plt.show()

# %% [markdown]
# At BERT's limit of 512 tokens the quadratic matrix is still small (12 MiB per layer and review in
# fp32), which is why BERT can afford plain attention; at 8k tokens it is 3 GiB, which is why long-
# context models cannot.
#
# ## 8. Attention or a recurrent network?
#
# Before transformers, sequence models were recurrent (an LSTM, say): they read one token after
# another and carry a state from each to the next. Two differences follow, and we measure both on
# untrained layers of the same width (64). **Path length**: what the first token contributes
# reaches the last position through every step of an LSTM, but through one weighted sum in
# attention. We measure the gradient of the last position's output with respect to the first
# token's input as the sequence grows. **Sequential steps**: an LSTM's T steps must run one after
# another; attention handles all positions in a few matrix products, which a GPU runs in parallel.

# %%
# NBVAL_IGNORE_OUTPUT
torch.manual_seed(0)
lstm, self_attention = session.place(nn.LSTM(64, 64, batch_first=True)), session.place(MultiHeadAttention(64, 4))
print(f"{'T':>4} {'|d last / d first|, LSTM':>26} {'attention':>10}")
reach = {}
for seq_len in (8, 32, 128, 512):
    x = torch.randn(1, seq_len, 64, device=device, requires_grad=True)  # (B, T, d_model)
    through_lstm = torch.autograd.grad(lstm(x)[0][0, -1].sum(), x)[0][0, 0].norm().item()
    through_attention = torch.autograd.grad(self_attention(x)[0][0, -1].sum(), x)[0][0, 0].norm().item()
    reach[seq_len] = (through_lstm, through_attention)
    print(f"{seq_len:>4} {through_lstm:>26.1e} {through_attention:>10.1e}")
x = torch.randn(8, 512, 64, device=device)
with torch.no_grad():
    lstm_s, attention_s = median_seconds(lambda: lstm(x)), median_seconds(lambda: self_attention(x))
print(f"8 sequences of 512 tokens on {device.type}: LSTM {lstm_s * 1e3:.2f} ms, attention {attention_s * 1e3:.2f} ms")
assert reach[512][1] > 1000 * reach[512][0], "the first token's gradient survives attention, not the LSTM"

# %% [markdown]
# Through the untrained LSTM the first token's gradient shrinks by orders of magnitude within a
# few dozen steps (training teaches its gates to keep information longer, but the path stays T
# steps long); through attention it shrinks only as the weights spread over more tokens (about
# 1/T). The timing is honest about the other side: on a CPU, with a width this small, the LSTM's
# 512 cheap steps can well beat attention's $T^2$ scores (the printed times). Attention wins where
# many positions can be computed at once, on a GPU, and pays with the quadratic cost of section 7.
#
# ## 9. The reusable version
#
# Later notebooks import these pieces instead of copying them: `helpers.attention` holds
# `attention`, `padding_mask`, `causal_mask` and `MultiHeadAttention`, written exactly as above, and
# a unit test (`tests/test_attention.py`) checks that the functions in this notebook and in the
# helper agree. One last check here:

# %%
import helpers.attention

torch.manual_seed(0)
q, k, v = (torch.randn(2, 4, 16, 8) for _ in range(3))
mask = helpers.attention.padding_mask(torch.tensor([16, 9]), 16) & helpers.attention.causal_mask(16)
assert torch.equal(helpers.attention.attention(q, k, v, mask)[0], attention(q, k, v, mask)[0])
print("helpers.attention.attention == this notebook's attention")

# %% [markdown]
# The helper adds one thing. A query whose keys are *all* blocked (an empty sequence, or a mask
# built wrongly) has only $-\infty$ scores, and the softmax of that row is 0/0: NaN, which then
# spreads through every later layer. PyTorch's SDPA returns 0 for such a row, and so does the
# helper: it sets the weights of a fully blocked row to 0. Below, query 1 may attend to no key.

# %%
torch.manual_seed(0)
q, k, v = (torch.randn(1, 3, 4) for _ in range(3))
allowed = torch.tensor([[True, True, True], [False, False, False], [True, False, False]])  # (T_q, T_k)
ours, helper = attention(q, k, v, allowed)[0], helpers.attention.attention(q, k, v, allowed)[0]
sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
print("query 1, the three lines above:", ours[0, 1].tolist())
print("query 1, helper               :", helper[0, 1].tolist())
print("query 1, SDPA                 :", sdpa[0, 1].tolist())
assert torch.isnan(ours[0, 1]).all() and torch.equal(helper[0, 1], torch.zeros(4))
torch.testing.assert_close(helper, sdpa)  # the other rows agree too

# %% [markdown]
# ## Exercises
#
# Try each one before opening its solution (the folded cell below it); CI runs the solutions.
#
# **Exercise 1.** Attention has no notion of order: show that permuting the positions of $x$
# permutes the output of `MultiHeadAttention` the same way (permutation equivariance). Where does
# BERT get word order from, then?

# %% tags=["solution"]
torch.manual_seed(1)
x = torch.randn(1, 10, d_model)
perm = torch.randperm(10)
with torch.no_grad():
    y, _ = mha(x)
    y_perm, _ = mha(x[:, perm])
assert torch.allclose(y_perm, y[:, perm], atol=1e-5)
print("mha(x[perm]) == mha(x)[perm]: order comes from the position embeddings added to the input")

# %% [markdown]
# **Exercise 2.** Divide the scores by $d_k$ instead of $\sqrt{d_k}$. What happens to the weights
# as $d_k$ grows? Measure the entropy of the weights over 32 keys at $d_k = 1024$ and compare with
# the entropy of a uniform distribution, $\ln 32$.

# %% tags=["solution"]
torch.manual_seed(2)
queries, keys = torch.randn(1000, 1024), torch.randn(32, 1024)
over_scaled = (queries @ keys.T / 1024).softmax(-1)  # (1000, 32)
entropy = -(over_scaled * over_scaled.log()).sum(-1).mean().item()
print(f"entropy {entropy:.3f} vs uniform ln 32 = {math.log(32):.3f}: the weights become uniform")
assert abs(entropy - math.log(32)) < 0.01

# %% [markdown]
# **Exercise 3.** Find the head of the pretrained model that attends most to the *previous*
# token: for every layer and head, average the weight that query $i$ puts on key $i-1$ over the
# tokens of the review sentence. How does the best head compare with a uniform head?

# %% tags=["solution"]
n_real = int(batch["attention_mask"][0].sum())  # tokens of the review sentence, [CLS] and [SEP] included
all_layers = torch.stack(outputs.attentions)[:, 0, :, :n_real, :n_real]  # (L, H, T, T), first sequence
previous = all_layers.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # (L, H): mean weight on key i-1
best_layer, best_head = divmod(int(previous.argmax()), previous.shape[1])
print(f"layer {best_layer}, head {best_head} puts {previous.max():.0%} of its attention on the previous "
      f"token; a uniform head would put {1 / n_real:.0%}")
session.expect(previous.max() > 2 / n_real, "some head of the pretrained model prefers the previous token")

# %% [markdown]
# ## Summary
#
# The formula is four lines; it equals PyTorch's fused kernel and the attention inside a
# pretrained BERT to float rounding; scaling by $\sqrt{d_k}$ keeps the softmax out of saturation;
# masks are $-\infty$ scores; and the hand-written version's memory grows with $T^2$ while the fused
# kernel's grows with $T$. Next, notebook 02 shows how a review becomes the token ids we fed the
# model here. The last line is this notebook's headline figures, for readers and for CI.

# %%
summary = print_summary(
    session,
    notebook="01_attention",
    max_abs_diff_vs_sdpa=max_abs_diff_vs_sdpa,
    max_abs_diff_vs_model_layer=max_abs_diff_vs_model_layer,
    max_abs_diff_whole_encoder=max_abs_diff_whole_encoder,
)
