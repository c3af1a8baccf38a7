"""Run every benchmark, write one Markdown table per benchmark and merge the figures into summary.json.

    python -m benchmarks.run                   # everything, full size (make bench)
    python -m benchmarks.run --size smallest   # every benchmark at its smallest size (the unit test)
    python -m benchmarks.run --only attention mlm_head
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import time
from pathlib import Path

import torch

from benchmarks.common import MissingNotebookModel, save_figure, write_atomically
from helpers.profile import get_profile
from helpers.session import library_versions, quiet_libraries

BENCHMARKS = ("attention", "tokenization", "batching", "mlm_head", "serving", "flops", "recipe", "seeds",
              "recipe_seeds", "learning_curve", "full_test", "students", "standard_path")
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """Describe the machine the numbers were measured on."""
    from helpers.device import cpu_has_bf16

    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    described = {"processor": names[0] if names else platform.processor() or platform.machine(),
                 "threads": torch.get_num_threads(), "native_bf16": cpu_has_bf16()}
    if torch.cuda.is_available():
        described["gpu"] = torch.cuda.get_device_name()
    return described


def write_report(result, seconds: float, out: Path) -> None:
    """Write <name>.md (and <name>.png when the benchmark draws a plot)."""
    lines = [f"# {result.title}", "", *result.lines]
    if result.goals:
        lines += ["Goals on the 2-core reference machine:", "", *result.goal_lines(), ""]
    if result.plot is not None:
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        result.plot(axes)
        save_figure(figure, out / f"{result.name}.png")
        lines += [f"![{result.title}]({result.name}.png)", ""]
    lines.append(f"Measured by `make bench` ({seconds:.0f} s for this benchmark).")
    write_atomically(out / f"{result.name}.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "smallest"), default="full")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the tables and summary.json")
    args = parser.parse_args(argv)
    quiet_libraries(offline=get_profile("cpu").offline)  # without a local copy of the data, it is fetched
    started = time.perf_counter()
    summary = {"command": "make bench" if args.size == "full" else f"python -m benchmarks.run --size {args.size}",
               "date": datetime.date.today().isoformat(), "machine": machine(), "versions": library_versions(),
               "seconds": {}, "results": {}, "goals": {}}  # and "skipped", when a benchmark's model is missing
    for name in args.only:
        print(f"running {name} ...", flush=True)
        began = time.perf_counter()
        runs = [("", {})]
        if name == "attention" and torch.cuda.is_available():
            runs.append(("_cuda", {"device": "cuda"}))
        for suffix, kwargs in runs:
            try:
                result = importlib.import_module(f"benchmarks.{name}").run(args.size, **kwargs)
            except MissingNotebookModel as missing:  # the model a notebook saves is not in the work folder
                print(f"  skipped {name}: {missing}", flush=True)
                summary.setdefault("skipped", {})[name + suffix] = str(missing)
                continue
            result.name += suffix
            seconds = time.perf_counter() - began
            write_report(result, seconds, args.out)
            summary["seconds"][result.name] = round(seconds, 1)
            summary["results"].update({k + suffix: v for k, v in result.figures.items()})
            for goal in result.goals:
                value = result.figures[goal.key]
                summary["goals"][goal.key + suffix] = {"value": value, "goal": goal.describe(), "met": goal.met(value)}
            for line in result.goal_lines():
                print("  " + line.removeprefix("- "), flush=True)
            print(f"  wrote {args.out / result.name}.md ({seconds:.0f} s)", flush=True)
    summary["seconds"]["total"] = round(time.perf_counter() - started, 1)
    path = args.out / "summary.json"
    if path.exists() and set(args.only) != set(BENCHMARKS):  # a partial run updates the last full summary
        previous = json.loads(path.read_text())
        summary["command"] = f"{previous['command']}, then python -m benchmarks.run --only {' '.join(args.only)}"
        for key in ("seconds", "results", "goals"):
            summary[key] = {**previous.get(key, {}), **summary[key]}
        summary["seconds"]["total"] = round(sum(v for k, v in summary["seconds"].items() if k != "total"), 1)
    write_atomically(path, json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path} ({summary['seconds']['total']:.0f} s in all)")
    return summary


if __name__ == "__main__":
    main()
