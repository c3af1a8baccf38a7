"""Which device a notebook runs on, and which precision that device computes in fast.

Introduced in notebook 01. The profile asks for a precision; `resolve_precision` says what this
machine can run; `PRECISIONS` maps each name to the dtype `torch.autocast` uses.
"""

from __future__ import annotations

import gc

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtype of each
BF16_MIN_CAPABILITY = (8, 0)  # Ampere (A100, L4) and later: bf16 tensor cores; a T4 is (7, 5)


def pick_device() -> torch.device:
    """Return cuda if present, else Apple's mps, else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_bf16() -> bool:
    """Return whether this CPU computes in bf16 natively (AMX or AVX-512 BF16), where autocast pays off."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def gpu_has_bf16() -> bool:
    """Return whether the GPU has bf16 tensor cores (compute capability 8.0 or later)."""
    # Not torch.cuda.is_bf16_supported(): it is True on a T4 too, where bf16 is emulated without
    # tensor cores and SDPA's fast kernels refuse it (about 4x slower steps, far more memory).
    return torch.cuda.get_device_capability() >= BF16_MIN_CAPABILITY


def resolve_precision(requested: str) -> str:
    """Return the precision this machine can run.

    bf16 needs a GPU of compute capability 8.0 or later (else fp16 with loss scaling) or, without
    CUDA, a CPU with native bf16 (else fp32); fp16 needs CUDA.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"Unknown precision {requested!r}: choose one of {', '.join(PRECISIONS)}.")
    cuda = torch.cuda.is_available()
    if requested == "bf16" and cuda:
        return "bf16" if gpu_has_bf16() else "fp16"
    if requested == "bf16":
        return "bf16" if cpu_has_bf16() and not torch.backends.mps.is_available() else "fp32"
    if requested == "fp16" and not cuda:
        return "fp32"
    return requested


def autocast(device: torch.device | str, precision: str):
    """Return the autocast context of `precision` on `device` (a no-op for fp32)."""
    device_type = torch.device(device).type
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def misplaced(namespace: dict, device: torch.device | str) -> list[str]:
    """Return `name (device)` for every model and tensor in `namespace` that is not on `device`'s type.

    The gpu smoke run prints this for each notebook's globals: on a GPU it names what a notebook left
    on the CPU beside a model that a TrainingLoop moved to CUDA (on a CPU everything is on the CPU).
    """
    wanted = torch.device(device).type
    found = []
    for name, value in namespace.items():
        if isinstance(value, torch.nn.Module):
            devices = {p.device.type for p in value.parameters()} | {b.device.type for b in value.buffers()}
        elif isinstance(value, torch.Tensor):
            devices = {value.device.type}
        else:
            continue
        if devices - {wanted}:
            found.append(f"{name} ({', '.join(sorted(devices))})")
    return sorted(found)


def free_memory() -> None:
    """Return the memory of freed tensors to the GPU (call it after the failed step's graph is gone)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
