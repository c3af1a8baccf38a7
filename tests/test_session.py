import json
import re

import torch

from helpers.session import library_versions, pick_device, print_summary, start_notebook


def test_start_notebook_prints_versions_and_profile_and_seeds(clean_env, capsys):
    session = start_notebook(profile="cpu", seed=3)
    first = torch.rand(3)
    start_notebook(profile="cpu", seed=3, verbose=False)
    assert torch.equal(first, torch.rand(3)), "the same seed must draw the same numbers"
    printed = capsys.readouterr().out
    assert "torch " in printed and "transformers 5." in printed
    assert re.search(r"^name +: cpu$", printed, re.MULTILINE)
    assert session.device == pick_device() and session.seed == 3


def test_versions_cover_the_stack():
    versions = library_versions()
    assert {"python", "torch", "transformers", "datasets", "accelerate"} <= set(versions)


def test_summary_is_one_json_line(clean_env, capsys):
    session = start_notebook(profile="cpu", verbose=False)
    returned = print_summary(session, notebook="00_test", accuracy=0.5)
    line = capsys.readouterr().out.strip()
    assert line.startswith("SUMMARY ") and "\n" not in line
    parsed = json.loads(line.removeprefix("SUMMARY "))
    assert parsed == returned and parsed["accuracy"] == 0.5 and parsed["model"] == "all-MiniLM-L6-v2"
    assert parsed["seconds"] >= 0
