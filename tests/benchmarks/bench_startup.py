"""Start-up time of the application: the PyInstaller bundle (dist/cxrgan-desktop, built by
packaging/build_bundle.sh) against the same code run from the project's virtual environment,
both timed here in one run.

What is timed is `cxrgan-desktop --self-test OUT.png --model M`: process start, Qt, the main
window, torch, loading the model, one image, exit: the path a user waits through before the
window answers. Offscreen, with fresh user folders; the first run of each is reported
apart (cold file cache), then the median of the rest.

    python tests/benchmarks/bench_startup.py --model MODEL.safetensors [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def time_self_test(command: list[str], model: str, runs: int) -> dict:
    seconds = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
            env["QT_QPA_PLATFORM"] = "offscreen"
            for name in ("DATA", "CACHE", "CONFIG"):
                env[f"CXRGAN_{name}_DIR"] = str(Path(tmp) / name.lower())
            started = time.perf_counter()
            run = subprocess.run([*command, "--self-test", str(Path(tmp) / "out.png"),
                                  "--model", model], capture_output=True, text=True, env=env)
            seconds.append(time.perf_counter() - started)
            if run.returncode != 0:
                raise SystemExit(f"{command[0]} failed:\n{run.stderr[-2000:]}")
    return {"first_s": round(seconds[0], 3), "median_s": round(statistics.median(
        seconds[1:] or seconds), 3), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a generator file to render from")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "cxrgan-desktop")
    args = parser.parse_args()
    source = time_self_test([sys.executable, "-m", "cxrgan_desktop.gui.shell.app"], args.model,
                            args.runs)
    result = {"source_venv": source}
    executable = args.bundle / "cxrgan-desktop"
    if executable.is_file():
        bundle = time_self_test([str(executable)], args.model, args.runs)
        size = sum(p.stat().st_size for p in args.bundle.rglob("*") if p.is_file())
        result["bundle"] = {**bundle, "size_mb": round(size / 1e6, 1),
                            "files": sum(1 for p in args.bundle.rglob("*") if p.is_file())}
        result["ratio_bundle_to_source"] = round(bundle["median_s"] / source["median_s"], 3)
    else:
        result["bundle"] = f"not built ({executable}); run packaging/build_bundle.sh"
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
