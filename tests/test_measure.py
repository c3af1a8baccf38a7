import torch

from helpers.measure import median_seconds, peak_tensor_bytes


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


def test_median_seconds_is_positive_and_calls_the_function_warmup_plus_repeats_times():
    calls = []
    seconds = median_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert seconds >= 0 and len(calls) == 5
