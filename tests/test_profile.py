import pytest
import torch

from helpers.profile import PROFILES, describe, get_profile, resolve_precision


def test_automatic_choice_follows_cuda(clean_env):
    clean_env.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "cpu"
    clean_env.setattr(torch.cuda, "is_available", lambda: True)
    clean_env.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert get_profile().name == "gpu"


def test_environment_variable_overrides_the_automatic_choice(clean_env):
    clean_env.setattr(torch.cuda, "is_available", lambda: False)
    clean_env.setenv("TUTORIAL_PROFILE", "GPU ")
    profile = get_profile()
    assert profile.name == "gpu" and profile.model_id == "google-bert/bert-base-uncased"
    clean_env.setattr("helpers.profile.cpu_has_bf16", lambda: False)
    assert get_profile().precision == "fp32", "without CUDA or a bf16 CPU, autocast would only slow things down"


def test_unknown_profile_names_the_valid_ones(clean_env):
    clean_env.setenv("TUTORIAL_PROFILE", "tpu")
    with pytest.raises(ValueError, match=r"Unknown profile 'tpu': choose one of cpu, gpu"):
        get_profile()


def test_precision_falls_back_on_cards_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # a T4
    assert resolve_precision("bf16") == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # an A100
    assert resolve_precision("bf16") == "bf16"


def test_cpu_bf16_only_where_the_processor_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr("helpers.profile.cpu_has_bf16", lambda: True)
    assert resolve_precision("bf16") == "bf16" and resolve_precision("fp16") == "fp32"
    monkeypatch.setattr("helpers.profile.cpu_has_bf16", lambda: False)
    assert resolve_precision("bf16") == "fp32"


def test_gpu_profile_pins_hub_revisions():
    gpu = PROFILES["gpu"]
    assert len(gpu.model_revision) == 40 and len(gpu.dataset_revision) == 40
    assert "model_revision" in describe(gpu)
