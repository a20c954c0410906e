"""Run every benchmark (benchmarks/bench_*.py) one after another and collect their tables.

.venv/bin/python benchmarks/run.py            # all, output also written to benchmarks/results/latest.md
.venv/bin/python benchmarks/run.py osm build  # only bench_osm.py and bench_build.py
"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    header = f"# civicmap benchmarks, {when}, {platform.node()}, python {platform.python_version()}\n"
    parts, failed = [header], 0
    for script in scripts:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
        parts.append(done.stdout)
        if done.returncode:
            failed += 1
            parts.append(f"\n**{script.name} failed** (exit {done.returncode}):\n```\n{done.stderr[-2000:]}\n```\n")
    text = "\n".join(parts)
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(text, encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
