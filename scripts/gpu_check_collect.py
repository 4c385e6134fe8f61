"""Collect the parts of a ``scripts/gpu_check.sh`` run into one JSON file.

Why a separate helper: the shell script only runs commands and records, for each part, its
exit status, wall time and output in a work folder (``parts.tsv`` plus ``NAME.out``,
``NAME.err`` and, for pytest parts, ``NAME.xml``); reading JUnit XML, benchmark JSON and the
FID benchmark's text table, and writing one file atomically, is easier and safer in Python.
A part that failed or printed something unreadable is recorded as failed with its reason
and the tail of its error output; the others are still collected. The exit status is 1 when
any part failed, so that the script's caller sees it.

    python scripts/gpu_check_collect.py --work DIR --out gpu_check.json --device cuda [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from cxrgan_desktop.core.fileio import atomic_write_json  # stdlib only: no torch

ROOT = Path(__file__).resolve().parents[1]
GENERATION_GOAL_IMAGES_PER_S = 1000  # issue 20: 1024 px, fp16, H100-class GPU
TAIL = 3000  # characters of a failed part's error output kept in the JSON


def environment(device: str) -> dict[str, Any]:
    """Versions and the device's name, so that figures are never read without their context.

    torch is imported here, not in the shell: a broken install is then recorded, not fatal."""
    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "requested_device": device,
    }
    try:
        import torch

        info.update({"torch": torch.__version__, "cuda_build": torch.version.cuda,
                     "cuda_available": torch.cuda.is_available()})
        if torch.cuda.is_available():
            index = (torch.device(device).index or 0) if device.startswith("cuda") else 0
            props = torch.cuda.get_device_properties(index)
            info.update({
                "device_name": torch.cuda.get_device_name(index),
                "device_count": torch.cuda.device_count(),
                "device_memory_gib": round(props.total_memory / 2**30, 1),
                "compute_capability": f"{props.major}.{props.minor}",
                "cudnn": torch.backends.cudnn.version(),
                "nccl": ".".join(map(str, torch.cuda.nccl.version()))
                if hasattr(torch.cuda, "nccl") else None,
                "bf16_supported": torch.cuda.is_bf16_supported()})
        else:
            info["device_name"] = f"CPU: {info['cpu']}"
    except Exception as error:  # record it; the parts will show the same failure
        info["torch_error"] = f"{type(error).__name__}: {error}"
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def junit_counts(path: Path) -> dict[str, Any]:
    """passed/failed/errors/skipped and the names of failures, from pytest's --junitxml."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites)
              for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failed, skipped = [], []
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        for child in case:
            if child.tag in ("failure", "error"):
                failed.append({"test": name, "message": (child.get("message") or "")[:500]})
            elif child.tag == "skipped":
                skipped.append({"test": name, "reason": (child.get("message") or "")[:300]})
    return {**counts, "failed_tests": failed, "skipped_tests": skipped}


def last_json_object(text: str) -> Any:
    """The benchmark's JSON: the last top-level object in its output (logs may precede it)."""
    start = text.find("{")
    while start != -1:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
    raise ValueError("no JSON object in the output")


def read_part(work: Path, name: str, kind: str, rc: str, seconds: str, command: str
              ) -> dict[str, Any]:
    part: dict[str, Any] = {"kind": kind, "command": command}
    if kind == "skipped":
        return {**part, "ok": True, "skipped": True}
    part.update({"exit_status": int(rc), "seconds": round(float(seconds), 1)})
    out = (work / f"{name}.out").read_text(errors="replace") if (work / f"{name}.out").exists() \
        else ""
    err = (work / f"{name}.err").read_text(errors="replace") if (work / f"{name}.err").exists() \
        else ""
    problems = []
    if int(rc) == 124 or int(rc) == 137:
        problems.append("timed out")
    elif int(rc) != 0:
        problems.append(f"exit status {rc}")
    try:
        if kind == "pytest":
            part["tests"] = junit_counts(work / f"{name}.xml")
        elif kind == "json":
            part["result"] = last_json_object(out)
    except Exception as error:
        problems.append(f"output not readable: {type(error).__name__}: {error}")
    part["ok"] = not problems
    if problems:
        part["problems"] = problems
        part["stdout_tail"] = out[-TAIL:]
        part["stderr_tail"] = err[-TAIL:]
    return part


def summary(parts: dict[str, dict[str, Any]], env: dict[str, Any]) -> dict[str, Any]:
    """The figures docs/benchmarks.md asks for, taken out of the parts."""
    out: dict[str, Any] = {"device": env.get("device_name")}
    tests = [p["tests"] for p in parts.values() if "tests" in p]
    out["tests"] = {key: sum(t[key] for t in tests)
                    for key in ("passed", "failures", "errors", "skipped")}
    for name, part in parts.items():
        result = part.get("result")
        if not isinstance(result, dict):
            continue
        if name.startswith("bench_generate"):
            batches = {key.removeprefix("batch_"): value.get("fast_images_per_s")
                       for key, value in result.items() if key.startswith("batch_")}
            entry = {"precision": result.get("precision"), "images_per_s_by_batch": batches,
                     "fraction_of_matmul_limit_nominal": {
                         key.removeprefix("batch_"): value.get("fraction_of_matmul_limit_nominal")
                         for key, value in result.items() if key.startswith("batch_")}}
            if "float16_vs_float32_one_image" in result:
                entry["float16_error"] = result["float16_vs_float32_one_image"]
            if result.get("precision") == "float16" and str(env.get("requested_device", "")
                                                            ).startswith("cuda"):
                best = max((v for v in batches.values() if v is not None), default=None)
                entry["goal_images_per_s"] = GENERATION_GOAL_IMAGES_PER_S
                entry["goal_met"] = None if best is None else best >= \
                    GENERATION_GOAL_IMAGES_PER_S
            out[f"{name}_1024"] = entry
        elif name == "bench_train":
            out["training_images_per_s"] = {
                resolution: row.get("images_per_s")
                for resolution, row in result.get("per_resolution", {}).items()}
            out["training_batch"] = result.get("batch")
        elif name == "bench_fid":
            ours = result.get("features", {}).get("ours", {})
            out["fid_features_images_per_s_from_1024"] = ours.get("images_per_s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="the script's work folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    env = environment(args.device)
    parts: dict[str, dict[str, Any]] = {}
    table = args.work / "parts.tsv"
    for line in table.read_text().splitlines() if table.exists() else []:
        name, kind, rc, seconds, command = line.split("\t", 4)
        try:
            parts[name] = read_part(args.work, name, kind, rc, seconds, command)
        except Exception as error:
            parts[name] = {"kind": kind, "command": command, "ok": False,
                           "problems": [f"not collected: {type(error).__name__}: {error}"]}
    failed = sorted(name for name, part in parts.items() if not part["ok"])
    report = {"format": "cxrgan-desktop/gpu-check", "version": 1,
              "mode": {"device": args.device, "quick": args.quick},
              "ok": bool(parts) and not failed, "failed_parts": failed,
              "environment": env, "summary": summary(parts, env), "parts": parts}
    atomic_write_json(args.out, report)
    print(json.dumps(report["summary"], indent=2))
    for name, part in parts.items():
        state = "skipped" if part.get("skipped") else ("ok" if part["ok"] else "FAILED: "
                                                      + "; ".join(part["problems"]))
        print(f"  {name}: {state}" + (f" ({part['seconds']} s)" if "seconds" in part else ""))
    print(f"gpu_check: {'all parts passed' if report['ok'] else 'failed: ' + ', '.join(failed)}"
          f"; JSON written to {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
