"""The notebook builder: percent-format parsing, atomic replacement, the SUMMARY line."""

import ast
import os
import subprocess
import sys
import types

import nbformat
import pytest

import notebooks.build as builder

SOURCE = '''# %% [markdown]
# # Title
#
# {{COLAB_BADGE}}

# %% [markdown]
# Prose before code. ![a figure]({{RAW_FILES}}/benchmarks/results/figure.png)

# %%
x = 1

# %% tags=["solution"]
print("SUMMARY {}")
'''


def test_parse_source_makes_markdown_code_and_folded_solution_cells():
    cells = builder.parse_source(SOURCE)
    assert [c.cell_type for c in cells] == ["markdown", "markdown", "code", "code"]
    assert cells[0].source == "# Title\n\n{{COLAB_BADGE}}" and cells[2].source == "x = 1"
    assert cells[3].metadata == {"jupyter": {"source_hidden": True}, "cellView": "form", "tags": ["solution"]}
    assert cells[3].source.splitlines()[0] == builder.SOLUTION_TITLE, "Colab folds a form cell below its title"


def test_notebook_from_source_inserts_badge_and_colab_cell(tmp_path):
    source = tmp_path / "09_demo.py"
    source.write_text(SOURCE)
    notebook = builder.notebook_from_source(source)
    url = builder.repository_url()
    assert builder.colab_badge(url, "09_demo") in notebook.cells[0].source
    figure = f"https://raw.githubusercontent.com/{url.removeprefix('https://github.com/')}/main/benchmarks/results/"
    assert f"![a figure]({figure}figure.png)" in notebook.cells[3].source, "a figure any copy of the notebook shows"
    assert notebook.cells[1].metadata["tags"] == ["colab"] and f"git+{url}" in notebook.cells[1].source
    assert "check=True" in notebook.cells[1].source, "a failed install must stop the notebook there"
    assert "USE_GOOGLE_DRIVE = False" in notebook.cells[2].source, "Drive is offered, not forced"
    assert [c.id for c in notebook.cells][:3] == ["09-000", "09-001", "09-002"]
    assert notebook.metadata["accelerator"] == "GPU" and notebook.metadata["colab"]["gpuType"] == "T4"


def test_the_colab_cells_run_off_colab_and_fail_loudly_on_a_failed_install(tmp_path, monkeypatch, capsys):
    source = tmp_path / "09_demo.py"
    source.write_text(SOURCE)
    install, drive = (cell.source for cell in builder.notebook_from_source(source).cells[1:3])
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    exec(install, {})  # off Colab: nothing happens
    exec(drive, {})
    assert capsys.readouterr().out == "", "Drive is not touched unless asked for"
    exec(drive.replace("USE_GOOGLE_DRIVE = False", "USE_GOOGLE_DRIVE = True"), {})
    assert "Not on Colab" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    failing = install.replace("git+", "/nonexistent/package-")
    with pytest.raises(subprocess.CalledProcessError):
        exec(failing, {})


def test_summary_line_reads_the_last_code_cell():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print()")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text='x\nSUMMARY {"a": 1}\n')]
    assert builder.summary_line(notebook) == 'SUMMARY {"a": 1}'


def build_in(folder, monkeypatch):
    """Point the builder at `folder`: sources in folder/src, notebooks beside them."""
    monkeypatch.setattr(builder, "SOURCES", folder / "src")
    monkeypatch.setattr(builder, "NOTEBOOKS", folder)
    monkeypatch.setattr(builder, "ROOT", folder)
    monkeypatch.setattr(builder, "repository_url", lambda: "https://github.com/example/example")


def test_a_failing_source_leaves_the_committed_notebook_unchanged(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "09_broken.py").write_text("# %% [markdown]\n# Title\n\n# %%\nraise RuntimeError('boom')\n")
    (tmp_path / "09_broken.ipynb").write_text("committed")
    build_in(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="09_broken.py failed; 09_broken.ipynb was left unchanged"):
        builder.build(["09"])
    assert (tmp_path / "09_broken.ipynb").read_text() == "committed"
    assert not list(tmp_path.glob("*.partial"))


def test_an_error_a_display_hook_shows_fails_the_build_too(tmp_path, monkeypatch):
    """A figure that cannot be drawn shows a traceback while the cell 'succeeds' (notebook 03's log axis did)."""
    cell = "\n".join([
        "import matplotlib",
        "matplotlib.use('module://matplotlib_inline.backend_inline')  # as in Jupyter",
        "import matplotlib.pyplot as plt",
        "from IPython.display import display",
        "figure, axis = plt.subplots()",
        "axis.plot([], [])",
        "axis.set(xlim=(0, 1))",
        "axis.set_yscale('log')  # nothing on it: cannot be drawn",
        "display(figure, display_id=True)",
        "plt.close(figure)",
    ])
    source = f"# %% [markdown]\n# Title\n\n# %%\n{cell}\n"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "09_shown.py").write_text(source)
    (tmp_path / "09_shown.ipynb").write_text("committed")
    build_in(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="(?s)09_shown.py failed.*log-scaled"):
        builder.build(["09"])
    assert (tmp_path / "09_shown.ipynb").read_text() == "committed"


def test_a_build_leaves_the_work_folder_setting_as_it_found_it(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "09_fine.py").write_text("# %% [markdown]\n# Title\n\n# %%\nx = 1\n")
    build_in(tmp_path, monkeypatch)
    used = []
    monkeypatch.setattr(builder, "execute", lambda notebook, name: used.append(os.environ["TUTORIAL_WORKDIR"]) or 0.0)
    monkeypatch.setenv("TUTORIAL_WORKDIR", str(tmp_path / "mine"))
    builder.build(["09"])
    assert os.environ["TUTORIAL_WORKDIR"] == str(tmp_path / "mine") and used[0] != str(tmp_path / "mine")
    assert not os.path.exists(used[0]), "the build's own fresh work folder is deleted"
    monkeypatch.delenv("TUTORIAL_WORKDIR")
    builder.build(["09"])
    assert "TUTORIAL_WORKDIR" not in os.environ and (tmp_path / "09_fine.ipynb").exists()


def test_the_runtime_package_does_not_import_the_build_tools():
    """Colab readers pip-install helpers/; nbclient and nbformat are build tools, not dependencies."""
    for module in sorted((builder.ROOT / "helpers").glob("*.py")):
        tree = ast.parse(module.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"nbclient", "nbformat", "nbval", "notebooks"}, module.name


def test_building_a_notebook_also_builds_the_ones_it_reads_from():
    assert builder.with_prerequisites(["07"]) == ["04", "07"]
    assert builder.with_prerequisites(["01", "06_scaling"]) == ["01", "04", "06_scaling"]
    assert builder.with_prerequisites([]) == []


def test_prose_refresh_keeps_the_outputs_and_refuses_changed_code(tmp_path, monkeypatch):
    monkeypatch.setattr(builder, "SOURCES", tmp_path / "src")
    monkeypatch.setattr(builder, "NOTEBOOKS", tmp_path)
    (tmp_path / "src").mkdir()
    source = tmp_path / "src" / "09_demo.py"
    source.write_text(SOURCE)
    monkeypatch.setattr(builder, "repository_url", lambda: "https://github.com/o/r")
    stored = builder.notebook_from_source(source)
    stored.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="SUMMARY {}\n")]
    nbformat.write(stored, tmp_path / "09_demo.ipynb")
    source.write_text(SOURCE.replace("# Prose before code.", "# Better prose.\n\n# %% [markdown]\n# A new paragraph."))
    monkeypatch.setattr(builder, "ROOT", tmp_path)  # only for the printed path
    monkeypatch.setattr(builder, "repository_url", lambda: "https://github.com/o/r")
    builder.refresh_prose(["09"])
    refreshed = nbformat.read(tmp_path / "09_demo.ipynb", as_version=4)
    assert "Better prose." in "".join(c.source for c in refreshed.cells)
    assert builder.summary_line(refreshed) == "SUMMARY {}", "the stored outputs stay"
    assert [c.id for c in refreshed.cells] == [c.id for c in builder.notebook_from_source(source).cells]
    source.write_text(SOURCE.replace("x = 1", "x = 2"))
    with pytest.raises(SystemExit, match="changed code, not only prose: run `make notebooks NB=09`"):
        builder.refresh_prose(["09"])
