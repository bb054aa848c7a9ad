"""Write a benchmark's section of benchmarks/RESULTS.md.

Each benchmark owns one section, delimited by HTML comment markers, and
replaces it whole on every run, so RESULTS.md always holds the latest figures
with the command, machine and date that produced them.
"""

import datetime as _dt
import os
import platform
import sys
from pathlib import Path

import torch

from lstmkit.io import atomic_write_text

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """One line describing where the benchmark ran."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from lstmkit.nn import cpu as caps

    return (
        f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}; "
        f"{caps.describe()}"
    )


def command() -> str:
    """The command line that is running, as a user would type it."""
    return "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def write_section(name: str, body: str) -> None:
    """Replace section ``name`` of RESULTS.md with ``body`` plus a provenance line."""
    stamp = _dt.date.today().isoformat()
    block = (
        f"<!-- {name}:start -->\n{body.rstrip()}\n\n"
        f"Command: `{command()}`; machine: {machine()}; date: {stamp}.\n"
        f"<!-- {name}:end -->"
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(RESULTS, text)
