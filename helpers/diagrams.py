"""Diagrams drawn in code: MLM's masking, data-parallel training, teacher and student, a size-speed-accuracy plot.

Each function returns its figure; tests/test_diagrams.py checks that each draws its parts. Notebooks
03, 06 and 07 show them beside the code they explain (01's encoder block,
`helpers.plotting.draw_encoder_block`, uses the same boxes and arrows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch

FATE_COLOURS = {"not chosen": "#f0f0f0", "[MASK]": "#f7d4d4", "random token": "#f5e6c8", "kept": "#d8f0d8"}


def box(axis, x: float, y: float, width: float, text: str, colour: str, height: float = 0.8) -> None:
    """Draw a labelled box centred on (x, y)."""
    axis.add_patch(plt.Rectangle((x - width / 2, y - height / 2), width, height, facecolor=colour,
                                 edgecolor="black", linewidth=0.8))
    axis.text(x, y, text, ha="center", va="center", fontsize=9)


def arrow(axis, start: tuple[float, float], end: tuple[float, float], **style) -> None:
    """Draw an arrow from start to end (matplotlib `arrowprops` in `style`)."""
    axis.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", **style})


def mask_fates(original: Sequence[str], masked: Sequence[str], chosen: Sequence[bool]) -> list[str]:
    """Return what masking did to each token: "not chosen", "[MASK]", "random token" or "kept"."""
    if not len(original) == len(masked) == len(chosen):
        raise ValueError(f"{len(original)} original tokens, {len(masked)} masked ones and {len(chosen)} choices: "
                         "give one of each per position.")
    return ["not chosen" if not pick else "[MASK]" if after == "[MASK]" else "kept" if after == before
            else "random token" for before, after, pick in zip(original, masked, chosen)]


def draw_mlm_masking(original: Sequence[str], masked: Sequence[str], chosen: Sequence[bool],
                     width: int = 64) -> Figure:
    """Draw a sentence before masking (upper row) and as the model reads it (lower row), coloured by fate.

    A chosen token (about 15 %) is one the model must predict: it became [MASK] (80 % of the
    chosen), a random token (10 %), or stayed as it was (10 %). Lines wrap at `width` characters.
    """
    fates = mask_fates(original, masked, chosen)
    places, column, line = [], 0, 0
    for before, after in zip(original, masked):
        size = max(len(before), len(after)) + 1
        if column and column + size > width:
            column, line = 0, line + 1
        places.append((column + size / 2, line, size))
        column += size + 1
    lines = line + 1
    fig, axis = plt.subplots(figsize=(10, 0.9 + 1.2 * lines), layout="constrained")
    for (centre, row, size), before, after, fate in zip(places, original, masked, fates):
        top = -3.0 * row
        box(axis, centre, top, size, before, "white")
        box(axis, centre, top - 1.4, size, after, FATE_COLOURS[fate])
        if fate != "not chosen":  # the model must predict the upper token from the lower one
            arrow(axis, (centre, top - 0.4), (centre, top - 1.0), color="tab:red")
    axis.set(xlim=(-0.5, width + 0.5), ylim=(-3.0 * lines + 0.9, 0.6))
    axis.axis("off")
    counts = {fate: fates.count(fate) for fate in FATE_COLOURS}
    axis.legend(handles=[Patch(facecolor=colour, edgecolor="black", label=f"{fate} ({counts[fate]})")
                         for fate, colour in FATE_COLOURS.items()], loc="upper center", bbox_to_anchor=(0.5, 0.0),
                ncols=4, fontsize=9)
    axis.set_title("Masking for MLM: each token above, what the model reads below (red arrow: predict it)",
                   fontsize=11)
    return fig


def draw_data_parallel(processes: int = 2, batch: int = 32) -> Figure:
    """Draw one step of data-parallel training: the global batch split, one gradient per process, the all-reduce."""
    if processes < 2 or batch % processes:
        raise ValueError(f"Draw at least 2 processes that split the batch evenly, not {processes} for {batch}.")
    centres = [1.5 + 2.9 * k for k in range(processes)]
    middle, span = (centres[0] + centres[-1]) / 2, centres[-1] - centres[0] + 2.6
    fig, axis = plt.subplots(figsize=(2.3 * processes + 2.2, 5.2), layout="constrained")
    box(axis, middle, 9.0, span, f"global batch: {batch} reviews", "#f0f0f0")
    for k, x in enumerate(centres):
        box(axis, x, 7.5, 2.5, f"process {k}: {batch // processes} reviews", "#d9e8f5")
        box(axis, x, 6.0, 2.5, "same weights:\nforward + backward", "#f7d4d4", height=1.0)
        box(axis, x, 4.5, 2.5, f"its gradients g{k}", "#f5e6c8")
        box(axis, x, 1.5, 2.5, "the same update", "#d8f0d8")
        for top, bottom in ((8.6, 7.9), (7.1, 6.5), (5.5, 4.9), (4.1, 3.4), (2.6, 1.9)):
            arrow(axis, (x, top), (x, bottom))
    box(axis, middle, 3.0, span, f"all-reduce: every process receives the mean of g0 ... g{processes - 1}", "#e8dcf5")
    axis.set(xlim=(middle - span / 2 - 0.3, middle + span / 2 + 0.3), ylim=(0.8, 9.7))
    axis.axis("off")
    axis.set_title(f"Data parallelism: one step on {processes} processes", fontsize=11)
    return fig


def draw_teacher_student(teacher_layers: int, kept: Sequence[int], temperature: float = 2.0) -> Figure:
    """Draw distillation: the student copies the teacher's embeddings, head and layers `kept`, then learns from
    the teacher's softened probabilities and the labels."""
    kept = list(kept)
    if not kept or kept != sorted(set(kept)) or kept[0] < 0 or kept[-1] >= teacher_layers:
        raise ValueError(f"kept={kept} must list different layers of the teacher's 0-{teacher_layers - 1}, in order.")
    fig, axis = plt.subplots(figsize=(8.0, 1.2 + 0.62 * (teacher_layers + 4)), layout="constrained")
    step = 0.75

    def stack(x: float, layers: Sequence[str], colour: str) -> list[float]:
        ys = [1.0 + step * (i + 1) for i in range(len(layers))]
        box(axis, x, 1.0, 2.6, "embeddings", "#d9e8f5", height=0.6)
        for y, name in zip(ys, layers):
            box(axis, x, y, 2.6, name, colour, height=0.6)
        box(axis, x, ys[-1] + step, 2.6, "classifier head", "#d8f0d8", height=0.6)
        return [1.0, *ys, ys[-1] + step]

    teacher = stack(1.8, [f"layer {i}" for i in range(teacher_layers)], "#f7d4d4")
    student = stack(6.2, [f"layer {i} (teacher's {k})" for i, k in enumerate(kept)], "#f7d4d4")
    copies = [(teacher[0], student[0])] + [(teacher[1 + k], student[1 + i]) for i, k in enumerate(kept)]
    for start, end in [*copies, (teacher[-1], student[-1])]:
        arrow(axis, (3.1, start), (4.9, end), color="grey", linestyle="--")
    axis.text(4.0, teacher[0] - 0.55, "copied at the start", ha="center", fontsize=8, color="grey")
    top = max(teacher[-1], student[-1]) + 1.0
    axis.text(1.8, top, f"teacher: {teacher_layers} layers", ha="center", fontsize=10, weight="bold")
    axis.text(6.2, top, f"student: {len(kept)} layers", ha="center", fontsize=10, weight="bold")
    loss = (f"loss = 1/2 KL(teacher || student, both softened at T = {temperature:g}) x T^2\n"
            "     + 1/2 cross-entropy(student, label)")
    axis.text(4.0, top + 0.8, loss, ha="center", va="center", fontsize=9, family="monospace",
              bbox={"boxstyle": "round", "facecolor": "#f0f0f0"})
    axis.set(xlim=(0, 8), ylim=(0.4, top + 1.5))
    axis.axis("off")
    axis.set_title("Knowledge distillation: the student's start and what it learns from", fontsize=11)
    return fig


def plot_tradeoff(models: Mapping[str, tuple[float, float, float]], title: str, reviews: int | None = None) -> Figure:
    """Plot each model's accuracy against its milliseconds per review, the marker's area following its megabytes.

    `models` maps a name to (milliseconds per review, accuracy in [0, 1], megabytes). With `reviews`,
    the number of reviews behind each accuracy, a bar gives its 95 % interval (normal approximation).
    """
    if not models:
        raise ValueError("No models to plot: give at least one name -> (ms per review, accuracy, MB).")
    fig, axis = plt.subplots(figsize=(6.5, 4.0), layout="constrained")
    largest = max(megabytes for _, _, megabytes in models.values())
    for name, (milliseconds, accuracy, megabytes) in models.items():
        axis.scatter(milliseconds, 100 * accuracy, s=600 * megabytes / largest, alpha=0.6)
        if reviews:
            half = 100 * 1.96 * math.sqrt(accuracy * (1 - accuracy) / reviews)
            axis.errorbar(milliseconds, 100 * accuracy, yerr=half, color="grey", capsize=3)
        axis.annotate(f"{name}\n{megabytes:.0f} MB", (milliseconds, 100 * accuracy), textcoords="offset points",
                      xytext=(10, 6), fontsize=8)
    axis.set(title=title, xlabel="milliseconds per review (lower is faster)", ylabel="accuracy (%)")
    if reviews:
        axis.text(0.99, 0.02, f"bars: 95 % interval ({reviews} reviews); area: megabytes", transform=axis.transAxes,
                  ha="right", fontsize=8, color="grey")
    axis.set_xlim(0, 1.3 * max(ms for ms, _, _ in models.values()))
    axis.margins(y=0.3)
    return fig
