"""Atomic writes: the old version or the new one, never half of one, and no temporary file left."""

import pytest

from helpers.files import atomic_path, partial_path


def test_a_file_appears_only_when_the_write_succeeded(tmp_path):
    target = tmp_path / "sub" / "table.md"
    with atomic_path(target) as partial:
        partial.write_text("new")
        assert not target.exists() and partial == partial_path(target), "nothing at the target while writing"
    assert target.read_text() == "new" and sorted(tmp_path.rglob("*")) == [tmp_path / "sub", target]


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as partial:
        partial.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_a_folder_is_swapped_in_whole(tmp_path):
    target = tmp_path / "classifier"
    target.mkdir()
    (target / "model.safetensors").write_text("old weights")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.mkdir()
        (partial / "model.safetensors").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "model.safetensors").read_text() == "old weights"
    with atomic_path(target) as partial:
        partial.mkdir()
        (partial / "model.safetensors").write_text("new weights")
    assert [p.name for p in target.iterdir()] == ["model.safetensors"]
    assert (target / "model.safetensors").read_text() == "new weights" and list(tmp_path.iterdir()) == [target]


def test_writing_nothing_is_an_error_that_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("{}")
    with pytest.raises(FileNotFoundError, match="Nothing was written"), atomic_path(target):
        pass
    assert target.read_text() == "{}"
