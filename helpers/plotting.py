"""Plot helpers every notebook reuses; each returns its figure.

Introduced in notebook 01 (`show_heatmaps` draws attention weights and masks).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.diagrams import arrow, box

STYLE = Path(__file__).with_name("tutorial.mplstyle")


def use_style() -> None:
    """Apply the series' matplotlib style to every later figure."""
    plt.style.use(STYLE)


def show_heatmaps(
    matrices: Sequence[torch.Tensor | np.ndarray],
    titles: Sequence[str],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    suptitle: str = "",
    xlabel: str = "key position",
    ylabel: str = "query position",
    ncols: int = 4,
    vmax: float | None = 1.0,
) -> Figure:
    """Draw square matrices (attention weights, masks) side by side with a shared colour bar."""
    ncols = min(ncols, len(matrices))
    nrows = -(-len(matrices) // ncols)
    size = 3.0 if row_labels is None or len(row_labels) <= 12 else 4.2
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols + 1, size * nrows + 0.6), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(matrices):]:
        ax.axis("off")
    for index, (ax, matrix, title) in enumerate(zip(axes.flat, matrices, titles)):
        values = matrix.detach().float().cpu().numpy() if isinstance(matrix, torch.Tensor) else matrix
        image = ax.imshow(values, vmin=0.0, vmax=vmax, cmap="viridis")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        if index % ncols == 0:
            ax.set_ylabel(ylabel)
        ax.grid(False)
        if col_labels is not None:
            ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=7)
        if row_labels is not None:
            ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle, fontweight="bold")
    return fig


class LiveCurve:
    """Draw training curves from a TrainingLoop's history, redrawn in place each time it is called.

    The losses on the left; the `right` metric (validation accuracy, perplexity), where measured, in
    a panel of its own beside them rather than on a second y axis over the same plot, whose scale
    would make any dip look as large as the panel. In a notebook the figure is one output updated as
    training goes (the stored notebook keeps the last drawing); elsewhere it is drawn once per call.
    """

    def __init__(self, title: str, right: str | None = None, right_label: str = "", right_log: bool = False,
                 left_also: str | None = None, left_also_label: str = "") -> None:
        self.fig = plt.figure(figsize=(10 if right else 7, 3.6), layout="constrained")
        self.title, self.right, self.right_label, self.right_log = title, right, right_label, right_log
        self.left_also, self.left_also_label = left_also, left_also_label  # e.g. the validation loss
        self.handle = None
        plt.close(self.fig)  # shown through the display handle only, not again at the end of the cell

    def __call__(self, history: list[dict]) -> Figure:
        """Redraw the training loss (and `left_also`) on the left and the `right` metric beside it."""
        from IPython.display import display

        fig = self.fig
        fig.clf()
        axes = fig.subplots(1, 2 if self.right else 1, squeeze=False)[0]
        ax = axes[0]
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".", label="training loss")
        ax.set(title=self.title, xlabel="optimizer step", ylabel="training loss (cross-entropy, nats)")
        also = [h for h in history if self.left_also and self.left_also in h]
        if also:
            ax.plot([h["step"] for h in also], [h[self.left_also] for h in also], "s--", color="C2",
                    label=self.left_also_label or self.left_also)
            ax.set_ylabel("loss (cross-entropy, nats)")
            ax.legend(loc="upper right")
        if self.right:
            measured = [h for h in history if self.right in h]
            panel = axes[1]
            panel.plot([h["step"] for h in measured], [h[self.right] for h in measured], "o-", color="C1")
            panel.set(title=self.right_label or self.right, xlabel="optimizer step", ylabel=self.right,
                      xlim=ax.get_xlim())
            if self.right_log and measured:  # a log axis with nothing on it cannot be drawn
                panel.set_yscale("log")
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        return fig


def show_token_colours(rows: Sequence[tuple[str, Sequence[str], Sequence[float], bool]], width: int = 110,
                       colour_bar: bool = True) -> Figure:
    """Draw reviews as tokens on coloured boxes, one panel per (title, tokens, scores, signed) row.

    Signed scores (attributions) go from blue (against positive) to red (for it), centred on 0;
    unsigned ones (attention) from white to purple. A figure, so that GitHub shows the colours too
    (it strips the inline styles of HTML outputs). Lines wrap at `width` characters.
    """
    import matplotlib as mpl

    layouts = []
    for _, tokens, _, _ in rows:
        column, line, places = 0, 0, []
        for token in tokens:
            if column and column + len(token) > width:
                column, line = 0, line + 1
            places.append((column, line))
            column += len(token) + 1
        layouts.append((places, line + 1))
    figure_width = 11.0
    font_size = figure_width * 0.92 * 72 / (width + 2) / 0.6  # the axes take ~92 % of the width; a monospace
    # character is 0.6 of the font size wide
    heights = [lines * font_size / 32 + 0.5 for _, lines in layouts]
    fig, axes = plt.subplots(len(rows), 1, figsize=(figure_width, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    for ax, (title, tokens, scores, signed), (places, lines) in zip(axes[:, 0], rows, layouts):
        scores = np.asarray(scores, dtype=float)
        top = float(np.abs(scores).max()) or 1.0
        colours = mpl.colormaps["RdBu_r"] if signed else mpl.colormaps["Purples"]
        norm = mpl.colors.Normalize(-top, top) if signed else mpl.colors.Normalize(0, top)
        for token, score, (column, line) in zip(tokens, scores, places):
            red, green, blue, _ = colours(norm(score))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white letters on a dark box
            ax.text(column, line, token, family="monospace", fontsize=font_size, va="center",
                    color="white" if dark else "black",
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": colours(norm(score)), "edgecolor": "none"})
        ax.set(xlim=(-1, width + 1), ylim=(lines - 0.4, -0.6), title=title)
        ax.title.set_fontsize(10)
        ax.axis("off")
        if colour_bar:
            fig.colorbar(mpl.cm.ScalarMappable(norm, colours), ax=ax, shrink=0.9, pad=0.01)
    return fig


def draw_encoder_block(layers: int, heads: int, d_model: int, d_ff: int) -> Figure:
    """Draw BERT's encoder: the three embeddings summed and normalised, then `layers` identical blocks of
    self-attention and a feed-forward layer, each wrapped in a residual connection and a LayerNorm."""
    fig, axis = plt.subplots(figsize=(6.4, 7.2), layout="constrained")
    axis.set(xlim=(0, 10), ylim=(0, 15.2))
    axis.axis("off")
    boxes = [  # (y of the box's centre, text, colour), from the input up
        (0.7, "token ids  [CLS] the film was great [SEP]", "#f0f0f0"),
        (2.3, "token + position + type embeddings (added)", "#d9e8f5"),
        (3.7, "LayerNorm", "#f5e6c8"),
        (5.7, f"multi-head self-attention ({heads} heads)", "#f7d4d4"),
        (7.2, "add the residual, LayerNorm", "#f5e6c8"),
        (9.2, f"feed-forward {d_model} -> {d_ff} -> {d_model}, GELU", "#d8f0d8"),
        (10.7, "add the residual, LayerNorm", "#f5e6c8"),
        (13.2, f"one vector of {d_model} numbers per token", "#f0f0f0"),
    ]
    for y, text, colour in boxes:
        box(axis, 4.6, y, 6.2, text, colour, height=0.9)
    for (y0, *_), (y1, *_) in zip(boxes, boxes[1:]):  # the main path, bottom to top
        arrow(axis, (4.6, y0 + 0.45), (4.6, y1 - 0.45))
    for start, end in ((4.8, 7.2), (7.9, 10.7)):  # the residual connections skip each sublayer, inside the frame
        arrow(axis, (7.7, start), (7.7, end), connectionstyle="bar,fraction=0.25", color="tab:blue")
    axis.text(9.6, 7.7, "residual\nconnections", ha="right", va="center", fontsize=8, color="tab:blue")
    axis.add_patch(plt.Rectangle((0.9, 4.6), 7.9, 6.85, fill=False, linestyle="--", edgecolor="grey"))
    axis.text(0.7, 8.0, f"x {layers} layers", rotation=90, ha="center", va="center", fontsize=10, color="grey")
    axis.set_title("The BERT encoder: where each part sits", fontsize=11)
    return fig
