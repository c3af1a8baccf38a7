"""Serving: clear errors on bad input, the command line, int8 quantization."""

from __future__ import annotations

import io
import time

import pytest
import torch
from torch import nn

from helpers.batching import pad_batch
from helpers.classification import MAX_CHARACTERS, BertForReviewClassification, check_reviews
from helpers.serving import main, median_latency_ms, quantize_int8, weights_megabytes


def test_check_reviews_says_what_is_wrong():
    assert check_reviews(["Fine."]) == ["Fine."]
    with pytest.raises(ValueError, match="Nothing to classify"):
        check_reviews([])
    with pytest.raises(ValueError, match="Review 2 of 2 is blank"):
        check_reviews(["Fine.", "  "])
    with pytest.raises(ValueError, match="Review 1 has 100,001 characters"):
        check_reviews(["x" * (MAX_CHARACTERS + 1)])


def classified_lines(capsys, argv, stdin=None) -> list[list[str]]:
    assert main(argv, stdin=stdin) == 0
    return [line.split("\t") for line in capsys.readouterr().out.splitlines()]


def test_the_command_line_classifies_arguments_and_standard_input(classifier_folder, capsys):
    common = ["--model", str(classifier_folder), "--max-length", "32"]
    lines = classified_lines(capsys, common + ["A wonderful film.", "Dull, " * 50])
    assert len(lines) == 2 and all(label in ("positive", "negative") and 0.5 <= float(p) <= 1 for label, p, _ in lines)
    assert lines[1][2].endswith("...") and len(lines[1][2]) == 63  # a long review is shortened when shown
    typed = io.StringIO("A wonderful film.\n\nDull, " + "dull, " * 49 + "\n")
    from_stdin = classified_lines(capsys, common, stdin=typed)
    assert [line[:2] for line in from_stdin] == [line[:2] for line in lines]  # blank lines are skipped
    assert len(classified_lines(capsys, common + ["--int8", "A wonderful film."])) == 1


@pytest.mark.parametrize(("argv", "message"), [
    ([], "Nothing to classify"),
    (["x" * (MAX_CHARACTERS + 1)], "the limit is 100,000"),
    (["Fine.", "--model", "/nowhere"], "No trained classifier in /nowhere: run notebook 04 first"),
])
def test_the_command_line_stops_with_one_sentence_on_bad_input(classifier_folder, capsys, argv, message):
    argv = argv if "--model" in argv else argv + ["--model", str(classifier_folder)]
    with pytest.raises(SystemExit) as stopped:
        main(argv, stdin=io.StringIO(""))
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_int8_quantization_replaces_linear_layers_and_stays_close(classifier_folder):
    model = BertForReviewClassification.from_pretrained(classifier_folder).eval()
    quantized = quantize_int8(model)
    assert not any(type(m) is nn.Linear for m in quantized.modules())
    assert any(type(m) is nn.Linear for m in model.modules())  # the original is left alone
    assert weights_megabytes(quantized) < weights_megabytes(model)
    batch = pad_batch([[101, 2307, 2143, 102], [101, 11980, 102]], pad_id=0)
    with torch.inference_mode():
        expected, got = model(**batch).logits.softmax(-1), quantized(**batch).logits.softmax(-1)
    assert (expected - got).abs().max() < 0.05


def test_latency_is_the_median_of_timed_forward_passes_in_milliseconds():
    class Sleepy(nn.Module):
        def forward(self, input_ids):
            time.sleep(0.02)
            return input_ids

    assert 20 <= median_latency_ms(Sleepy(), {"input_ids": torch.zeros(1)}, repeats=3) < 200


def test_int8_quantization_of_named_layers_only(classifier_folder):
    model = BertForReviewClassification.from_pretrained(classifier_folder).eval()
    quantized = quantize_int8(model, only={"bert.encoder.layer.0.intermediate.dense"})
    plain = [name for name, m in quantized.named_modules() if type(m) is nn.Linear]
    assert "bert.encoder.layer.0.intermediate.dense" not in plain and "bert.encoder.layer.1.intermediate.dense" in plain
