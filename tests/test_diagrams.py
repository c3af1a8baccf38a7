"""The diagrams are drawn with their parts: texts, boxes and arrows (helpers/diagrams.py)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from helpers.diagrams import (  # noqa: E402
    draw_data_parallel,
    draw_mlm_masking,
    draw_teacher_student,
    mask_fates,
    plot_tradeoff,
)


def texts_of(figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].texts]


def arrows_of(figure) -> int:
    return sum(1 for text in figure.axes[0].texts if getattr(text, "arrow_patch", None) is not None)


def test_masking_fates_follow_the_recipe():
    original = ["the", "film", "was", "great", "fun"]
    masked = ["the", "[MASK]", "was", "cat", "fun"]
    assert mask_fates(original, masked, [False, True, False, True, True]) == [
        "not chosen", "[MASK]", "not chosen", "random token", "kept"]
    with pytest.raises(ValueError, match="one of each per position"):
        mask_fates(original, masked[:2], [True] * 5)


def test_the_masking_diagram_shows_both_rows_and_one_arrow_per_chosen_token():
    original = "the film was great and the cast was wonderful in every scene of it".split()
    masked = list(original)
    masked[1], masked[3], masked[8] = "[MASK]", "[MASK]", "table"
    chosen = [i in (1, 3, 8, 12) for i in range(len(original))]  # 12 stays as it was
    figure = draw_mlm_masking(original, masked, chosen, width=30)  # narrow: the sentence wraps
    texts = texts_of(figure)
    assert texts.count("[MASK]") == 2 and "table" in texts and texts.count("wonderful") == 1
    assert len(figure.axes[0].patches) == 2 * len(original)  # a box above and below each token
    assert arrows_of(figure) == 4
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["not chosen (10)", "[MASK] (2)", "random token (1)", "kept (1)"]
    plt.close(figure)


def test_the_data_parallel_diagram_has_a_column_per_process_and_one_all_reduce():
    figure = draw_data_parallel(processes=3, batch=48)
    texts = texts_of(figure)
    assert "global batch: 48 reviews" in texts and texts.count("the same update") == 3
    assert [t for t in texts if t.startswith("process")] == [f"process {k}: 16 reviews" for k in range(3)]
    assert sum("all-reduce" in t for t in texts) == 1 and "its gradients g2" in texts
    assert arrows_of(figure) == 3 * 5
    plt.close(figure)
    with pytest.raises(ValueError, match="split the batch evenly"):
        draw_data_parallel(processes=3, batch=32)


def test_the_teacher_student_diagram_copies_the_kept_layers():
    figure = draw_teacher_student(teacher_layers=6, kept=[0, 2, 4])
    texts = texts_of(figure)
    assert "teacher: 6 layers" in texts and "student: 3 layers" in texts
    assert [t for t in texts if "teacher's" in t] == ["layer 0 (teacher's 0)", "layer 1 (teacher's 2)",
                                                      "layer 2 (teacher's 4)"]
    assert arrows_of(figure) == 3 + 2  # the kept layers, the embeddings and the head
    assert any("T = 2" in t and "cross-entropy" in t for t in texts)
    plt.close(figure)
    with pytest.raises(ValueError, match="different layers"):
        draw_teacher_student(teacher_layers=6, kept=[4, 2])


def test_the_tradeoff_plot_has_a_point_per_model_sized_by_megabytes():
    figure = plot_tradeoff({"fp32": (33.0, 0.898, 90.0), "int8": (14.6, 0.897, 59.0)}, "int8 against float32")
    axis = figure.axes[0]
    sizes = [collection.get_sizes()[0] for collection in axis.collections]
    assert sizes == [600.0, pytest.approx(600 * 59 / 90)]
    assert ["fp32\n90 MB", "int8\n59 MB"] == [t.get_text() for t in axis.texts]
    assert axis.get_ylabel() == "accuracy (%)" and not axis.containers, "no interval bars without a review count"
    plt.close(figure)
    figure = plot_tradeoff({"fp32": (33.0, 0.9, 90.0)}, "with intervals", reviews=1_000)
    (bar,) = figure.axes[0].containers
    low, high = bar.lines[2][0].get_segments()[0][:, 1]
    assert high - low == pytest.approx(2 * 100 * 1.96 * (0.9 * 0.1 / 1_000) ** 0.5)
    plt.close(figure)
    with pytest.raises(ValueError, match="No models"):
        plot_tradeoff({}, "empty")


def test_live_curves_put_the_metric_in_its_own_panel_not_on_a_twin_axis(monkeypatch):
    import IPython.display

    from helpers.plotting import LiveCurve

    monkeypatch.setattr(IPython.display, "display", lambda *args, **kwargs: None)
    history = [{"step": 10, "loss": 0.7}, {"step": 20, "loss": 0.5, "validation_loss": 0.45, "accuracy": 0.80},
               {"step": 30, "loss": 0.4, "validation_loss": 0.40, "accuracy": 0.86}]
    figure = LiveCurve("fine-tuning", right="accuracy", right_label="validation accuracy",
                       left_also="validation_loss")(history)
    losses, accuracy = figure.axes  # two panels side by side, no twin axes
    assert losses.get_position().x1 <= accuracy.get_position().x0
    assert [line.get_ydata().tolist() for line in accuracy.lines] == [[0.80, 0.86]]
    assert accuracy.get_title() == "validation accuracy" and len(losses.lines) == 2
    assert len(LiveCurve("plain")(history).axes) == 1


def test_a_live_curve_on_a_log_scale_draws_before_its_first_measurement(monkeypatch):
    """Notebook 03's perplexity panel is logarithmic; the first calls come before any perplexity exists."""
    import io

    import IPython.display

    from helpers.plotting import LiveCurve

    monkeypatch.setattr(IPython.display, "display", lambda *args, **kwargs: None)
    curve = LiveCurve("MLM", right="perplexity", right_log=True)
    curve([{"step": 1, "loss": 7.0}]).savefig(io.BytesIO(), format="png")  # drawing is where it used to fail
    figure = curve([{"step": 1, "loss": 7.0}, {"step": 2, "loss": 6.0, "perplexity": 800.0}])
    figure.savefig(io.BytesIO(), format="png")
    assert figure.axes[1].get_yscale() == "log"
