"""Each notebook's peak memory at its default parameters, against Binder's budget, printed.

The figure is the one ``course run`` measures: the peak PSS of the kernel and every process it
starts (lesson 06's workers included). Binder gives 1 to 2 GB, and the course promises that every
lesson's defaults fit in 1.4 GB. The run takes a few minutes on a 2-core CPU.

    python -m tests.benchmarks.bench_memory [--profile default] [--output DIR] [NN ...]
    python -m tests.benchmarks.bench_memory --from RUN   # read a run made before

It prints a Markdown table (the README's), and exits with status 1 if a notebook failed or went
over ``--budget-mb``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from utils import runner

BUDGET_MB = 1400.0


def table(summary: dict, budget_mb: float) -> tuple[str, list[str]]:
    """The Markdown table of ``summary``'s notebooks, and the problems (failed, over budget)."""
    lines = ["| notebook | peak memory (PSS) |", "|---|---|"]
    problems = []
    for entry in summary["notebooks"]:
        peak = entry.get("peak_memory_mb")
        shown = f"{peak:.0f} MB" if peak is not None else "not measured"
        lines.append(f"| `{entry['notebook']}` | {shown} |")
        if entry["status"] != "ok":
            problems.append(f"{entry['notebook']}: {entry['status']} (log: {entry.get('log')})")
        elif peak is not None and peak > budget_mb:
            problems.append(f"{entry['notebook']}: {peak:.0f} MB, over {budget_mb:.0f} MB")
    return "\n".join(lines), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="lesson numbers or names (default: all)")
    parser.add_argument("--profile", default="default", choices=runner.PROFILES)
    parser.add_argument("--output", type=Path, help="folder for the run (default: a temporary one)")
    parser.add_argument("--from", dest="run", type=Path, help="read RUN/summary.json, run nothing")
    parser.add_argument("--budget-mb", type=float, default=BUDGET_MB)
    args = parser.parse_args(argv)

    if args.run:
        summary_path = args.run / "summary.json"
        if not summary_path.is_file():
            parser.error(f"{summary_path} does not exist: give --from a folder `course run` wrote")
    else:
        out = args.output or Path(tempfile.mkdtemp(prefix="bench-memory-"))
        results = runner.execute(runner.plan(args.notebooks, args.profile), out)
        runner.write_summary(results, out, args.profile)
        summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text())
    text, problems = table(summary, args.budget_mb)
    host = summary.get("machine") or {}
    print(f"{summary.get('profile')} profile, {summary.get('created')}, "
          f"{host.get('cpu', 'unknown CPU')}, {host.get('cores', '?')} usable core(s); peak "
          f"{summary.get('memory_metric', 'pss').upper()} of the kernel and its children")
    print(text)
    for problem in problems:
        print(f"over budget or failed: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
