"""The helpers' attention equals the notebook's teaching version and PyTorch's own."""

import pytest
import torch
from conftest import notebook_definitions
from torch import nn
from torch.nn import functional as F

from helpers.attention import MultiHeadAttention, attention, causal_mask, padding_mask
from helpers.plotting import draw_encoder_block

NOTEBOOK = notebook_definitions("01_attention.ipynb", ["attention", "MultiHeadAttention"])


def random_qkv(seed: int = 0, batch: int = 2, heads: int = 3, seq_len: int = 7, d_head: int = 5):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, seq_len, d_head, generator=generator) for _ in range(3)]


def test_masks_have_the_documented_shapes_and_values():
    pad = padding_mask(torch.tensor([3, 1]), 4)
    assert pad.shape == (2, 1, 1, 4)
    assert pad[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False]]
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


@pytest.mark.parametrize("mask_name", ["none", "padding", "causal", "both"])
def test_attention_equals_the_notebook_and_sdpa(mask_name):
    q, k, v = random_qkv()
    masks = {"none": None, "padding": padding_mask(torch.tensor([7, 4]), 7), "causal": causal_mask(7)}
    masks["both"] = masks["padding"] & masks["causal"]
    mask = masks[mask_name]
    ours, weights = attention(q, k, v, mask)
    torch.testing.assert_close(ours, NOTEBOOK["attention"](q, k, v, mask)[0], rtol=0, atol=0)  # the same operations
    # SDPA's kernel adds in another order: a few float32 ulps (1.2e-7 each) of outputs of size about 1
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=0, atol=1e-6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 7))


def test_padded_keys_get_exactly_zero_weight():
    q, k, v = random_qkv()
    _, weights = attention(q, k, v, padding_mask(torch.tensor([7, 4]), 7))
    assert torch.count_nonzero(weights[1, :, :, 4:]) == 0


def test_a_fully_blocked_query_gets_zero_as_in_sdpa_where_the_three_lines_give_nan():
    q, k, v = random_qkv()
    mask = padding_mask(torch.tensor([7, 0]), 7)  # the second sequence has no real token at all
    ours, weights = attention(q, k, v, mask)
    assert torch.isnan(NOTEBOOK["attention"](q, k, v, mask)[0][1]).all(), "the notebook's version, as it says"
    assert torch.count_nonzero(weights[1]) == 0 and torch.count_nonzero(ours[1]) == 0
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=0, atol=1e-6)


def test_multi_head_attention_equals_the_notebook_and_torch():
    torch.manual_seed(0)
    ours = MultiHeadAttention(d_model=32, n_heads=4)
    theirs_notebook = NOTEBOOK["MultiHeadAttention"](32, 4)
    theirs_notebook.load_state_dict(ours.state_dict())  # same names: q_proj, k_proj, v_proj, out_proj
    theirs_torch = nn.MultiheadAttention(32, 4, batch_first=True)
    with torch.no_grad():
        theirs_torch.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs_torch.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs_torch.out_proj.load_state_dict(ours.out_proj.state_dict())
    x = torch.randn(2, 6, 32)
    real = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    with torch.no_grad():
        out, weights = ours(x, real[:, None, None, :])
        torch.testing.assert_close(out, theirs_notebook(x, real[:, None, None, :])[0], rtol=0, atol=0)
        torch_out, torch_weights = theirs_torch(x, x, x, key_padding_mask=~real)
    # float32 through four 32-wide projections, summed in PyTorch's own order: about 1e-6 apart, 10x margin
    torch.testing.assert_close(out, torch_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(weights.mean(1), torch_weights, rtol=0, atol=1e-6)  # softmax weights lie in [0, 1]
    assert sum(p.numel() for p in ours.parameters()) == 4 * (32 * 32 + 32)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_heads=4"):
        MultiHeadAttention(30, 4)


def test_the_encoder_block_figure_draws_every_part_with_the_models_sizes():
    import matplotlib.pyplot as plt

    figure = draw_encoder_block(layers=6, heads=12, d_model=384, d_ff=1536)
    texts = [t.get_text() for t in figure.axes[0].texts]
    for part in ("token + position + type embeddings (added)", "multi-head self-attention (12 heads)",
                 "feed-forward 384 -> 1536 -> 384, GELU", "x 6 layers", "one vector of 384 numbers per token"):
        assert part in texts
    assert texts.count("add the residual, LayerNorm") == 2  # one after each sublayer
    assert len(figure.axes[0].patches) == 9  # eight boxes and the frame of the repeated layer
    plt.close(figure)
