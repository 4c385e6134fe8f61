"""Two processes under torchrun with gloo on the CPU: the distributed path end to end."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxrgan_desktop.engine.checkpoints import load_generator
from tests.test_training import TINY


@pytest.mark.slow
def test_two_process_gloo_run_completes_and_resumes(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    from cxrgan_desktop.tasks.phantom import write_phantoms

    write_phantoms(tmp_path / "data", n=16, size=16, seed=2)
    config = {**TINY, "batch_sizes": {"4": 8, "8": 8, "16": 8},
              "data": {"image_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "c")}}
    (tmp_path / "tiny.json").write_text(json.dumps(config))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1"}

    def launch(*extra):
        return subprocess.run(
            [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "cxrgan_desktop",
             "train", str(tmp_path / "tiny.json"), "--run-dir", str(run), "--device", "cpu",
             *extra], capture_output=True, text=True, timeout=300, env=env)

    first = launch("--stop-at", "96")
    assert first.returncode == 0, first.stderr[-3000:]
    second = launch()
    assert second.returncode == 0, second.stderr[-3000:]
    assert "288 of 288 scheduled images shown (finished)" in second.stdout
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["processes"] == 2
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().split("\n") if x]
    assert rows[-1]["images"] == 288  # one log, written by rank 0
    assert load_generator(run / "final.safetensors").resolution == 16
