import dataclasses
import json
import os
import re
import subprocess
import sys
import time
import types

import pytest
import torch

from helpers.device import misplaced, pick_device
from helpers.models import adapted_encoder_dir, classifier_dir
from helpers.profile import PROFILES, get_profile, work_dir
from helpers.session import (
    Session,
    data_source,
    in_colab,
    library_versions,
    print_summary,
    start_notebook,
    use_google_drive,
)


def test_start_notebook_prints_versions_and_profile_and_seeds(clean_env, capsys):
    session = start_notebook(profile="cpu", seed=3)
    first = torch.rand(3)
    start_notebook(profile="cpu", seed=3, verbose=False)
    assert torch.equal(first, torch.rand(3)), "the same seed must draw the same numbers"
    printed = capsys.readouterr().out
    assert "torch " in printed and "transformers 5." in printed
    assert re.search(r"^name +: cpu$", printed, re.MULTILINE)
    assert session.device == pick_device() and session.seed == 3


def test_start_notebook_prints_only_the_fields_a_notebook_uses(clean_env, capsys):
    start_notebook(profile="cpu", uses=("max_length", "seed"))
    printed = capsys.readouterr().out
    assert re.search(r"^max_length +: 256$", printed, re.MULTILINE) and re.search(r"^name +: cpu$", printed, re.M)
    assert "mlm_steps" not in printed and "helpers.profile.describe(profile)" in printed
    with pytest.raises(ValueError, match="no field 'max_lenght'"):
        start_notebook(profile="cpu", uses=("max_lenght",))


def test_versions_name_each_library_and_say_when_one_is_missing(monkeypatch):
    monkeypatch.setattr("helpers.session.LIBRARIES", ("torch", "no-such-library-for-the-tutorial"))
    versions = library_versions()
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__
    assert versions["no-such-library-for-the-tutorial"] == "not installed"


def test_summary_is_one_json_line(clean_env, capsys):
    session = dataclasses.replace(start_notebook(profile="cpu", verbose=False), started=time.perf_counter() - 7)
    returned = print_summary(session, notebook="00_test", accuracy=0.5)
    line = capsys.readouterr().out.strip()
    assert line.startswith("SUMMARY ") and "\n" not in line
    parsed = json.loads(line.removeprefix("SUMMARY "))
    assert parsed == returned and parsed["accuracy"] == 0.5 and parsed["model"] == "all-MiniLM-L6-v2"
    assert 7 <= parsed["seconds"] < 60, "seconds since the notebook started"


def test_google_drive_holds_finished_models_on_colab_only(clean_env, tmp_path, capsys):
    clean_env.delenv("COLAB_RELEASE_TAG", raising=False)
    clean_env.setenv("TUTORIAL_MODELS_DIR", "")  # unset, and restored after use_google_drive sets it
    clean_env.setenv("TUTORIAL_WORKDIR", str(tmp_path / "local"))
    assert not in_colab() and use_google_drive(mount_point=str(tmp_path)) is None
    assert "Not on Colab" in capsys.readouterr().out and os.environ["TUTORIAL_WORKDIR"] == str(tmp_path / "local")

    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    clean_env.setitem(sys.modules, "google.colab", colab)
    made_before = get_profile("cpu")
    target = use_google_drive(mount_point=str(tmp_path))
    assert mounted == [str(tmp_path)] and target == tmp_path / "MyDrive" / "bert-imdb-tutorial" and target.is_dir()
    assert classifier_dir(get_profile("cpu")) == target / "cpu" / "classifier", "later notebooks find it on Drive"
    assert adapted_encoder_dir(get_profile("cpu")).parent == target / "cpu"
    assert work_dir(get_profile("cpu")) == tmp_path / "local" / "cpu", "checkpoints stay off Drive (its Trash quota)"
    assert classifier_dir(made_before).parent == tmp_path / "local" / "cpu", "a frozen profile: made before, no Drive"


@pytest.mark.slow
def test_the_cuda_allocator_is_configured_before_cuda_starts():
    code = "import helpers, os, torch; print(os.environ['PYTORCH_CUDA_ALLOC_CONF'], torch.cuda.is_initialized())"
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_CUDA_ALLOC_CONF"}
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.split()
    assert printed == ["expandable_segments:True", "False"]
    env["PYTORCH_CUDA_ALLOC_CONF"] = "max_split_size_mb:128"
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.split()
    assert printed[0] == "max_split_size_mb:128", "a reader's own setting wins"


def test_place_and_misplaced_agree_on_where_models_and_tensors_are():
    session = Session(profile=PROFILES["cpu"], device=torch.device("cpu"), seed=0)
    model = torch.nn.Linear(2, 2, device="meta")  # a device other than the session's, on any machine
    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long, device="meta"), "note": "kept"}
    assert misplaced({"model": model, "ids": batch["input_ids"], "text": "x"}, session.device) == [
        "ids (meta)", "model (meta)"]
    placed = session.place({"input_ids": torch.zeros(2, 3, dtype=torch.long), "note": "kept"})
    assert placed["note"] == "kept" and misplaced(placed, "cpu") == []
    assert misplaced({"model": session.place(torch.nn.Linear(2, 2))}, "cpu") == []


def test_the_data_line_says_subsets_only_where_the_profile_takes_them(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("TUTORIAL_DATASET", str(tmp_path))  # a local copy: no Hub needed to describe it
    assert data_source(get_profile("cpu")).endswith("reviews (stratified subsets of the official splits, seed 0)")
    gpu = data_source(get_profile("gpu"))
    assert "all train, all test, all unlabelled reviews (the official splits)" in gpu and "subsets" not in gpu
