import dataclasses

import pytest
import torch

from helpers.device import resolve_precision
from helpers.profile import PROFILES, describe, get_profile, scaled


def test_automatic_choice_follows_cuda(clean_env):
    clean_env.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "cpu"
    clean_env.setattr(torch.cuda, "is_available", lambda: True)
    clean_env.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert get_profile().name == "gpu"


def test_environment_variable_overrides_the_automatic_choice(clean_env):
    clean_env.setattr(torch.cuda, "is_available", lambda: False)
    clean_env.setenv("TUTORIAL_PROFILE", "GPU ")
    profile = get_profile()
    assert profile.name == "gpu" and profile.model_id == "google-bert/bert-base-uncased"
    clean_env.setattr("helpers.device.cpu_has_bf16", lambda: False)
    assert get_profile().precision == "fp32", "without CUDA or a bf16 CPU, autocast would only slow things down"


def test_unknown_profile_names_the_valid_ones(clean_env):
    clean_env.setenv("TUTORIAL_PROFILE", "tpu")
    with pytest.raises(ValueError, match=r"Unknown profile 'tpu': choose one of cpu, gpu"):
        get_profile()


@pytest.mark.parametrize("card, capability, expected", [
    ("T4", (7, 5), "fp16"), ("V100", (7, 0), "fp16"), ("A100", (8, 0), "bf16"), ("L4", (8, 9), "bf16"),
    ("H100", (9, 0), "bf16"),
])
def test_bf16_only_from_compute_capability_8(clean_env, card, capability, expected):
    clean_env.setattr(torch.cuda, "is_available", lambda: True)
    clean_env.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    clean_env.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 answers too (emulation)
    assert resolve_precision("bf16") == expected, card
    assert get_profile("gpu").precision == expected


def test_dataset_override_and_scale_knob(clean_env, tmp_path):
    clean_env.setenv("TUTORIAL_DATASET", str(tmp_path))
    clean_env.setenv("TUTORIAL_SCALE", "0.01")
    gpu = get_profile("gpu")
    assert (gpu.dataset_id, gpu.dataset_revision) == (str(tmp_path), None), "a local copy has no Hub revision"
    assert (gpu.mlm_steps, gpu.mlm_eval_blocks, gpu.epochs) == (10, 10, 1)
    assert gpu.max_length == PROFILES["gpu"].max_length, "the knob shrinks steps, not the code path"
    assert scaled(dataclasses.replace(PROFILES["gpu"], epochs=4), 0.5).epochs == 2, "epochs shrink too"
    assert get_profile("cpu").dataset_id == str(tmp_path), "both profiles read the same data set"
    for bad in ("0", "2", "fast"):
        clean_env.setenv("TUTORIAL_SCALE", bad)
        with pytest.raises(ValueError, match="TUTORIAL_SCALE=.*give a number above 0 and at most 1"):
            get_profile("gpu")


def test_cpu_bf16_only_where_the_processor_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr("helpers.device.cpu_has_bf16", lambda: True)
    assert resolve_precision("bf16") == "bf16" and resolve_precision("fp16") == "fp32"
    monkeypatch.setattr("helpers.device.cpu_has_bf16", lambda: False)
    assert resolve_precision("bf16") == "fp32"


def test_gpu_profile_pins_hub_revisions():
    gpu = PROFILES["gpu"]
    assert len(gpu.model_revision) == 40 and len(gpu.dataset_revision) == 40
    assert "model_revision" in describe(gpu)


def test_the_cpu_profile_trains_with_the_attention_kernel_that_is_faster_in_its_precision(clean_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr("helpers.device.cpu_has_bf16", lambda: True)
    clean_env.delenv("TUTORIAL_PRECISION", raising=False)
    assert get_profile("cpu").attention_kernel == "eager", "written out: faster at 256 tokens under bf16 autocast"
    clean_env.setenv("TUTORIAL_PRECISION", "fp32")
    assert get_profile("cpu").attention_kernel == "sdpa", "fused: faster in fp32"
    monkeypatch.setattr("helpers.device.cpu_has_bf16", lambda: False)
    clean_env.delenv("TUTORIAL_PRECISION")
    assert get_profile("cpu").attention_kernel == "sdpa", "a CPU without bf16 runs fp32"
    assert get_profile("gpu").attention_kernel == "sdpa"


def test_fp32_can_be_forced_and_nothing_else(clean_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr("helpers.device.cpu_has_bf16", lambda: True)
    clean_env.delenv("TUTORIAL_PRECISION", raising=False)  # the suite may run with it set
    assert get_profile("cpu").precision == "bf16"
    clean_env.setenv("TUTORIAL_PRECISION", "FP32")
    assert get_profile("cpu").precision == "fp32", "a bf16 CPU runs as one without bf16"
    clean_env.setenv("TUTORIAL_PRECISION", "fp16")
    with pytest.raises(ValueError, match="TUTORIAL_PRECISION='fp16': only fp32 can be forced"):
        get_profile("cpu")


def test_describe_names_local_paths_without_the_machines_folders(clean_env, tmp_path):
    clean_env.setenv("TUTORIAL_DATASET", str(tmp_path / "imdb"))
    (tmp_path / "imdb").mkdir()
    text = describe(get_profile("cpu"), ["dataset_id"])
    assert "dataset_id : imdb (a local folder)" in text and str(tmp_path) not in text
