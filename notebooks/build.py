"""Build the notebooks from their sources and execute them with visible progress.

    python -m notebooks.build build [NAME ...]   # notebooks/src/*.py -> notebooks/*.ipynb, executed
    python -m notebooks.build run [NAME ...]     # execute notebooks/*.ipynb into runs/<profile>/
    python -m notebooks.build prose [NAME ...]   # text cells from notebooks/src, stored outputs kept

Sources are percent-format Python files (`# %%` starts a code cell, `# %% [markdown]` a text
cell, `# %% tags=["solution"]` a solution cell shown folded). `build` adds, after the title, the
Colab install cell (its repository address comes from pyproject.toml) and the optional Google
Drive cell, asks Colab for a T4 in the metadata, and replaces a notebook only after it has
executed without error. `make notebooks` and `make run` call these two commands, from the
repository's root. This is build tooling, not part of the `helpers` package that Colab readers
install: it needs nbclient and nbformat (in requirements.txt), which the notebooks themselves do not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from helpers.files import atomic_path
from helpers.profile import MODELS_ENV, WORK_ENV, get_profile

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
RUNS = ROOT / "runs"
CELL_TIMEOUT_S = 1800
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}  # else Colab opens a CPU
REQUIRES = {"06": ["04"], "07": ["04"]}  # notebooks that read what an earlier one wrote
SOLUTION_TITLE = "# @title Solution (run it to check; double-click, or Show code, to read it)"


def repository_url() -> str:
    """Return the project's repository address, kept in one place: pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]["urls"]["Repository"]


def colab_cell_source(url: str) -> str:
    """Return the first code cell: on Colab install the project (failing loudly), elsewhere do nothing."""
    return (
        "# On Colab: install this project (a minute). Colab's own torch, transformers, datasets and pandas\n"
        "# are kept. Elsewhere: nothing to do (see the README).\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:  # check=True: a failed install stops here, not at the next import\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+{url}"], check=True)'
    )


DRIVE_CELL_SOURCE = (
    "# Optional, on Colab: save finished models (notebook 03's encoder, 04's classifier) on Google Drive.\n"
    "# Colab runs each notebook on its own machine, so the next notebook finds them only there.\n"
    "# Checkpoints stay on this machine's disk (Drive's Trash would fill its quota). Set True to mount.\n"
    "USE_GOOGLE_DRIVE = False\n"
    "if USE_GOOGLE_DRIVE:\n"
    "    from helpers.session import use_google_drive\n"
    "\n"
    "    use_google_drive()"
)


def raw_files_url(url: str) -> str:
    """Return the address of the main branch's raw files: a figure linked there shows on GitHub and on Colab."""
    return f"https://raw.githubusercontent.com/{url.removeprefix('https://github.com/')}/main"


def colab_badge(url: str, stem: str) -> str:
    """Return the Markdown "Open in Colab" badge for notebooks/<stem>.ipynb on the main branch."""
    path = url.removeprefix("https://github.com/")
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{stem}.ipynb)"
    )


def parse_source(text: str) -> list[nbformat.NotebookNode]:
    """Split a percent-format source into notebook cells."""
    cells = []
    for chunk in re.split(r"^(?=# %%)", text, flags=re.MULTILINE):
        if not chunk.strip():
            continue
        header, _, body = chunk.partition("\n")
        tags = json.loads(m.group(1)) if (m := re.search(r"tags=(\[.*?\])", header)) else []
        body = body.strip("\n")
        if "[markdown]" in header:
            lines = [re.sub(r"^# ?", "", line) for line in body.splitlines()]
            cell = nbformat.v4.new_markdown_cell("\n".join(lines))
        else:
            if "solution" in tags:  # folded in Jupyter (source_hidden) and on Colab (a form shows its title only)
                cell = nbformat.v4.new_code_cell(f"{SOLUTION_TITLE}\n{body}")
                cell.metadata["jupyter"] = {"source_hidden": True}
                cell.metadata["cellView"] = "form"
            else:
                cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)
    return cells


def notebook_from_source(path: Path) -> nbformat.NotebookNode:
    """Return the notebook for one source file, with the Colab cell after its title."""
    url = repository_url()
    text = path.read_text(encoding="utf-8").replace("{{COLAB_BADGE}}", colab_badge(url, path.stem))
    text = text.replace("{{RAW_FILES}}", raw_files_url(url))  # e.g. a benchmark's figure
    cells = parse_source(text)
    colab = nbformat.v4.new_code_cell(colab_cell_source(url))
    colab.metadata["tags"] = ["colab"]
    drive = nbformat.v4.new_code_cell(DRIVE_CELL_SOURCE)
    drive.metadata["tags"] = ["colab", "drive"]
    cells[1:1] = [colab, drive]
    for index, cell in enumerate(cells):
        cell["id"] = f"{path.stem[:2]}-{index:03d}"  # stable ids keep diffs small
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}, **COLAB_METADATA}
    return notebook


def execute(notebook: nbformat.NotebookNode, name: str) -> float:
    """Execute a notebook in place from notebooks/, printing one line per cell; return seconds."""
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    start = time.perf_counter()

    def progress(cell, cell_index, **_):
        number = code_cells.index(cell) + 1 if cell in code_cells else 0
        print(f"  [{name}] cell {number}/{len(code_cells)} done at {time.perf_counter() - start:6.1f} s", flush=True)

    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}}, on_cell_executed=progress,
    )
    client.execute()
    shown = [o for c in code_cells for o in c.get("outputs", []) if o.output_type == "error"]
    if shown:  # an exception a display hook caught and showed (a figure that cannot be drawn): nbclient lets it pass
        raise CellExecutionError("\n".join(shown[0].get("traceback", [])), shown[0].ename, shown[0].evalue)
    return time.perf_counter() - start


def summary_line(notebook: nbformat.NotebookNode) -> str | None:
    """Return the `SUMMARY {json}` line the notebook's last code cell printed, if any."""
    last = [c for c in notebook.cells if c.cell_type == "code"][-1]
    lines = "".join(o.get("text", "") for o in last.get("outputs", [])).splitlines()
    return next((line for line in reversed(lines) if line.startswith("SUMMARY ")), None)


def write_atomically(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Write a notebook so that a crash never leaves half of it (helpers.files)."""
    with atomic_path(path) as partial:
        nbformat.write(notebook, partial)


def select(paths: list[Path], names: list[str]) -> list[Path]:
    """Keep the paths whose file name starts with one of `names` (all when `names` is empty)."""
    chosen = [p for p in paths if not names or any(p.name.startswith(n) for n in names)]
    if not chosen:
        raise SystemExit(f"No notebook matches {names}: choose from {[p.stem for p in paths]}.")
    return chosen


def with_prerequisites(names: list[str]) -> list[str]:
    """Add the notebooks whose outputs the named ones read (building 04 runs 03 first)."""
    return sorted({required for name in names for required in REQUIRES.get(name[:2], [])} | set(names))


def build(names: list[str]) -> None:
    """Rebuild notebooks from notebooks/src and store the outputs of a fresh execution.

    The run writes its checkpoints and models into a fresh work folder, so nothing left over from
    an earlier run (a finished checkpoint, an old encoder) changes what the stored outputs show.
    """
    work, before = tempfile.mkdtemp(prefix="tutorial-build-"), os.environ.get(WORK_ENV)
    os.environ[WORK_ENV] = work  # the kernels inherit it
    models_before = os.environ.pop(MODELS_ENV, None)  # finished models too go to the fresh folder
    try:
        for source in select(sorted(SOURCES.glob("[0-9]*.py")), with_prerequisites(names)):
            target = NOTEBOOKS / f"{source.stem}.ipynb"
            print(f"building {target.relative_to(ROOT)}", flush=True)
            notebook = notebook_from_source(source)
            try:
                seconds = execute(notebook, source.stem)
            except CellExecutionError as error:
                raise SystemExit(f"{source.name} failed; {target.name} was left unchanged.\n{error}") from None
            write_atomically(notebook, target)
            print(f"  wrote {target.relative_to(ROOT)} ({seconds:.0f} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if before is None:  # leave the environment as it was, not pointing at a deleted folder
            os.environ.pop(WORK_ENV, None)
        else:
            os.environ[WORK_ENV] = before
        if models_before is not None:
            os.environ[MODELS_ENV] = models_before


def run(names: list[str]) -> None:
    """Execute the committed notebooks in order into runs/<profile>/ and say where they are."""
    profile = get_profile().name
    out_dir = RUNS / profile
    paths = select(sorted(NOTEBOOKS.glob("[0-9]*.ipynb")), names)
    print(f"executing {len(paths)} notebook(s) at the {profile!r} profile into {out_dir}", flush=True)
    summaries = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        target = out_dir / path.name
        try:
            seconds = execute(notebook, path.stem)
        except CellExecutionError as error:
            write_atomically(notebook, target.with_name(f"{path.stem}.failed.ipynb"))
            raise SystemExit(f"{path.name} failed; the partial run is in {target.parent}.\n{error}") from None
        write_atomically(notebook, target)
        print(f"  {path.stem}: {seconds:.0f} s -> {target.relative_to(ROOT)}", flush=True)
        summaries.append(summary_line(notebook) or f"{path.stem}: no SUMMARY line")
    print(f"done: executed copies are in {out_dir}", flush=True)
    print("\n".join(summaries), flush=True)


def refresh_prose(names: list[str]) -> None:
    """Rewrite the text cells of committed notebooks from their sources, keeping every stored output.

    Only when no code cell changed (same code, same order): the outputs are then still those of that
    code. Any change to code needs `build`, a fresh execution.
    """
    for source in select(sorted(SOURCES.glob("[0-9]*.py")), names):
        target = NOTEBOOKS / f"{source.stem}.ipynb"
        fresh, stored = notebook_from_source(source), nbformat.read(target, as_version=4)
        executed = [c for c in stored.cells if c.cell_type == "code"]
        if [c.source for c in fresh.cells if c.cell_type == "code"] != [c.source for c in executed]:
            raise SystemExit(f"{source.name} changed code, not only prose: run `make notebooks NB={source.stem[:2]}`.")
        kept = iter(executed)
        for index, cell in enumerate(fresh.cells):
            if cell.cell_type == "code":
                fresh.cells[index] = next(kept)
                fresh.cells[index]["id"] = cell["id"]  # ids follow positions, which new text cells shift
        write_atomically(fresh, target)
        print(f"  refreshed the text of {target.relative_to(ROOT)}; its outputs are the stored ones", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and build, run, or refresh the text of notebooks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "run", "prose"])
    parser.add_argument("names", nargs="*", help="notebook name prefixes such as 01 (default: all)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    {"build": build, "run": run, "prose": refresh_prose}[args.command](args.names)


if __name__ == "__main__":
    main(sys.argv[1:])
