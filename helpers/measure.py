"""Measure time and peak tensor memory of a computation, the same way on CPU and GPU.

Introduced in notebook 01 (the cost of attention); the benchmarks reuse it.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def alternating_medians(candidates: dict[str, Callable[[], object]], repeats: int = 5,
                        warmup: int = 1) -> dict[str, float]:
    """Return each candidate's median wall time in seconds, running them in turns so that noise hits all alike.

    The first `warmup` rounds are discarded (caches, lazy initialisation, the allocator growing).
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, fn in candidates.items():
            _synchronize()
            started = time.perf_counter()
            fn()
            _synchronize()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Return the median wall time of `fn()` over `repeats` runs, after `warmup` runs."""
    return alternating_medians({"fn": fn}, repeats, warmup)["fn"]


class _LiveTensorBytes(TorchDispatchMode):
    """Count the bytes of every tensor storage an operator creates, until it is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[StorageWeakRef, int] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        known = {ref.cdata for ref in self.live}
        tensors_in = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        inputs = {StorageWeakRef(t.untyped_storage()).cdata for t in tensors_in}
        out = func(*args, **(kwargs or {}))
        for ref in [ref for ref in self.live if ref.expired()]:
            del self.live[ref]
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                ref = StorageWeakRef(tensor.untyped_storage())
                if ref.cdata not in known and ref.cdata not in inputs:
                    known.add(ref.cdata)
                    self.live[ref] = tensor.untyped_storage().nbytes()
        self.peak = max(self.peak, sum(self.live.values()))
        return out

    def live_bytes(self) -> int:
        """Return the bytes of the storages created so far that are still alive."""
        return sum(size for ref, size in self.live.items() if not ref.expired())


def peak_tensor_bytes(fn: Callable[[], object], grad: bool = False) -> int:
    """Return the largest number of bytes held at once by tensors that `fn()` allocates.

    Counts every tensor created through PyTorch's operators (the same on CPU and GPU), the backward
    pass's too when `grad` lets `fn` build a graph; scratch memory a fused kernel uses internally
    and frees before returning is not visible here.
    """
    with torch.set_grad_enabled(grad), _LiveTensorBytes() as tracker:
        result = fn()
        del result
    return tracker.peak


def live_bytes_after_each(step: Callable[[], object], steps: int) -> list[int]:
    """Run `step()` `steps` times; return the bytes of the tensors still alive after each run.

    Only tensors created during the runs count (not the model's weights or optimizer state made
    before): a list that grows step after step is a leak (notebook 04's FAQ: a loss summed as a
    tensor, evaluation without `torch.no_grad`).
    """
    after = []
    with _LiveTensorBytes() as tracker:
        for _ in range(steps):
            step()
            after.append(tracker.live_bytes())
    return after


# Dense (not sparse) tensor-core peaks in TFLOP/s for the precision each card trains in here
# (fp16 on a T4, bf16 on the others), from the vendors' data sheets.
PEAK_TFLOPS = {"T4": 65.0, "L4": 121.0, "L40S": 362.0, "A10G": 125.0, "A100": 312.0, "H100": 989.0,
               "H200": 989.0}


def peak_tflops(device_name: str) -> float | None:
    """Return the card's peak TFLOP/s for mixed-precision matrix multiplies, if known.

    A card's name must appear as a whole word: "NVIDIA L40S" is not an L4, "A100-SXM4-80GB" is an A100.
    """
    words = set(re.split(r"[^A-Z0-9]+", device_name.upper()))
    return next((peak for card, peak in PEAK_TFLOPS.items() if card in words), None)


def training_flops_per_token(parameters: int, layers: int, d_model: int, seq_len: float) -> float:
    """Return the FLOPs of one forward+backward pass per token of a BERT-like encoder.

    6 per parameter (2 forward, 4 backward: every weight multiplies and adds once per token forward,
    twice as much backward) plus attention's two T x T products, 12 * layers * T * d_model per token
    (forward and backward). Embedding lookups cost no multiplies: pass non-embedding parameters.
    """
    return 6 * parameters + 12 * layers * seq_len * d_model


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Discard what C++ code writes to file descriptor 2 inside the block (the profiler's start/stop lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_table(fn: Callable[[], object], rows: int = 8, width: int = 100) -> str:
    """Run `fn` once under PyTorch's profiler; return its operators by own CPU time, the slowest `rows` first."""
    with native_stderr_silenced(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as run:
        fn()
    table = run.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=45)
    return "\n".join(line[:width] for line in table.splitlines())
