import time

import pytest
import torch

from helpers.measure import alternating_medians, live_bytes_after_each, median_seconds, peak_tensor_bytes, peak_tflops


def test_peak_counts_live_tensors_not_the_sum_of_all_allocations():
    def two_in_sequence():
        a = torch.ones(256, 1024)  # 1 MiB
        del a
        b = torch.ones(256, 1024)  # 1 MiB, allocated after a was freed
        return b

    def two_at_once():
        a = torch.ones(256, 1024)
        b = torch.ones(256, 1024)
        return a + b  # three live at the peak

    assert peak_tensor_bytes(two_in_sequence) == 2**20
    assert peak_tensor_bytes(two_at_once) == 3 * 2**20


def test_views_and_inputs_are_not_counted():
    x = torch.ones(512, 512)
    assert peak_tensor_bytes(lambda: x.t()[:10].unsqueeze(0)) == 0


def test_with_grad_the_backward_pass_and_the_kept_activations_are_counted():
    weight = torch.ones(256, 256, requires_grad=True)  # 256 KiB
    x = torch.ones(256, 256)

    def forward():
        return (x @ weight).relu().sum()  # with grad, the activation is kept for the backward pass

    def step():
        forward().backward()

    assert peak_tensor_bytes(forward) == 2 * 2**18  # the product and its relu, while relu runs
    assert peak_tensor_bytes(step, grad=True) > peak_tensor_bytes(forward)  # + the backward's gradients
    assert weight.grad is not None


def test_median_seconds_measures_the_call_and_runs_warmup_plus_repeats_times():
    calls = []

    def sleepy():
        calls.append(1)
        time.sleep(0.05)

    seconds = median_seconds(sleepy, repeats=3, warmup=2)
    assert 0.05 <= seconds < 0.5 and len(calls) == 5


def test_candidates_take_turns_and_the_warmup_round_is_dropped():
    order = []
    slow_first = iter([0.3, 0.01, 0.01, 0.01])  # the warm-up round is slow, as a cold cache is
    medians = alternating_medians({"a": lambda: order.append("a") or time.sleep(next(slow_first)),
                                   "b": lambda: order.append("b")}, repeats=3)
    assert order == ["a", "b"] * 4 and medians["a"] < 0.1


@pytest.mark.parametrize(("name", "peak"), [
    ("Tesla T4", 65.0), ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.0), ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA A10G", 125.0), ("NVIDIA GeForce RTX 4090", None),
])
def test_peak_tflops_matches_whole_card_names(name, peak):
    assert peak_tflops(name) == peak


def test_profile_table_names_the_operators_and_keeps_the_profilers_native_lines_off_stderr(capfd):
    from helpers.measure import profile_table

    table = profile_table(lambda: torch.ones(64, 64) @ torch.ones(64, 64), rows=5)
    assert "aten::" in table and "Self CPU" in table
    assert max(len(line) for line in table.splitlines()) <= 100
    captured = capfd.readouterr()
    assert "profiler_start" not in captured.err and captured.err == "", "stderr in a notebook output breaks nbval"


def test_live_bytes_grow_when_a_loop_keeps_each_steps_graph_and_stay_flat_with_item():
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(256, 256), torch.randn(64, 256)
    kept = []

    def leaky():  # scoring with gradients on, the loss kept as a tensor: its graph keeps the activations
        kept.append(layer(x).relu().sum())

    def fixed():
        with torch.no_grad():
            kept.append(layer(x).relu().sum().item())

    leaky_bytes = live_bytes_after_each(leaky, 4)
    kept.clear()
    assert [b - a for a, b in zip(leaky_bytes, leaky_bytes[1:])] == [64 * 256 * 4 + 4] * 3  # ReLU's output, the sum
    assert live_bytes_after_each(fixed, 4) == [0] * 4
