"""Rerun the security review's attacks on model files and downloads (issue 18, groups 5-6)
and print JSON: per attack, inputs tried, handled (a CheckpointError / InstallError /
DownloadFailed naming the file), tracebacks (any other exception), and data lost.

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/attack_model_files.py [--loads 1000]

Runs against whichever ``cxrgan_desktop`` is importable (PYTHONPATH=<old checkout> measures
the code before the fix). Memory-hungry attacks run in a child process under an address-space
limit, so the old code's 29 GB request fails fast instead of exhausting the machine.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import http.server
import io
import json
import multiprocessing
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests.reference, after PYTHONPATH


def _classify(call) -> str:
    from cxrgan_desktop.engine.checkpoints import CheckpointError

    try:
        call()
    except CheckpointError:
        return "handled"
    except Exception as error:  # what the review counted as a traceback
        return f"traceback: {type(error).__name__}: {str(error)[:120]}"
    return "accepted"


def _small_native(path: Path, seed: int = 0, channels=(32, 32, 16, 8)) -> Path:
    from cxrgan_desktop.engine.checkpoints import OutputAdapter, save_generator
    from cxrgan_desktop.engine.pggan import Generator, PGGANConfig

    torch.manual_seed(seed)
    return save_generator(path, Generator(PGGANConfig(latent_size=64, channels=channels)),
                          OutputAdapter(), "m")


def _header(path: Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + length])["__metadata__"], load_file(path)


def _rewrite(path: Path, metadata: dict, tensors: dict) -> None:
    from safetensors.torch import save

    path.write_bytes(save(tensors, metadata=metadata))


_CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
from cxrgan_desktop.engine.checkpoints import CheckpointError, load_generator
start = time.perf_counter()
try:
    load_generator(sys.argv[1]); outcome = "accepted"
except CheckpointError as error:
    outcome = "handled: " + str(error).splitlines()[0][-150:]
except BaseException as error:
    outcome = f"traceback: {type(error).__name__}: {str(error)[:150]}"
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(repr((outcome, round(elapsed, 3), round(peak, 1))))
"""


def attack_huge_channels(work: Path) -> dict:
    """The review's file: a small model whose metadata claims widths of 20000 (and, within
    the new bounds, 4096 at every resolution)."""
    results = {}
    base = _small_native(work / "base.safetensors")
    for label, channels in [("valid small model", None), ("channels 20000 x4", [20000] * 4),
                            ("channels 4096 x9", [4096] * 9)]:
        path = work / f"{label.replace(' ', '_')}.safetensors"
        metadata, tensors = _header(base)
        if channels:
            architecture = json.loads(metadata["architecture"])
            architecture["channels"] = channels
            metadata["architecture"] = json.dumps(architecture)
        _rewrite(path, metadata, tensors)
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                              text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        outcome, seconds, peak_mb = ast.literal_eval(done.stdout.strip().splitlines()[-1])
        results[label] = {"file_kb": round(path.stat().st_size / 1024, 1), "outcome": outcome,
                          "seconds": seconds, "peak_rss_mb": peak_mb}
    return results


def attack_bad_values(work: Path) -> dict:
    from cxrgan_desktop.engine.checkpoints import load_generator
    from tests.reference.segal_layout import random_segal_generator_state

    base = _small_native(work / "values.safetensors")
    outcomes = {}
    for label, make in [("nan", lambda t: t.fill_(float("nan"))),
                        ("inf", lambda t: t.fill_(float("inf"))),
                        ("3e38", lambda t: t.fill_(3e38)), ("bool", lambda t: t > 0),
                        ("int64", lambda t: t.long()), ("int32", lambda t: t.int())]:
        metadata, tensors = _header(base)
        tensors["G.blocks.1.conv1.weight"] = make(tensors["G.blocks.1.conv1.weight"])
        path = work / f"v_{label}.safetensors"
        _rewrite(path, metadata, tensors)
        outcomes[f"native {label}"] = _classify(lambda p=path: load_generator(p))
        state = random_segal_generator_state((32, 32, 16), 16)
        state["init_conv.0.module.weight"] = make(state["init_conv.0.module.weight"])
        path = work / f"v_{label}.pth"
        torch.save(state, path)
        outcomes[f"paper {label}"] = _classify(lambda p=path: load_generator(p))
    return _tally(outcomes)


def _tally(outcomes: dict) -> dict:
    return {"tried": len(outcomes),
            "handled": sum(v == "handled" for v in outcomes.values()),
            "accepted": sorted(k for k, v in outcomes.items() if v == "accepted"),
            "tracebacks": {k: v for k, v in outcomes.items() if v.startswith("traceback")}}


def _replacer(path: str, sources: list[str], stop, count) -> None:
    i = 0
    while not stop.is_set():
        tmp = f"{path}.{os.getpid()}.tmp"
        shutil.copyfile(sources[i % 2], tmp)
        os.replace(tmp, path)  # as import-model --force does (atomic_write_bytes)
        i += 1
    count.value = i


def attack_swapped_file(work: Path, loads: int) -> dict:
    """Loads while another process keeps replacing the file with one of two models."""
    from cxrgan_desktop.engine.checkpoints import CheckpointError, load_generator

    sources = [_small_native(work / f"swap_{k}.safetensors", seed=k) for k in (1, 2)]
    digests = {hashlib.sha256(s.read_bytes()).hexdigest(): k for k, s in enumerate(sources)}
    marks = [_header(s)[1]["G.latent_fc.weight"][0, 0].item() for s in sources]
    target = work / "swapped.safetensors"
    shutil.copyfile(sources[0], target)
    stop, count = multiprocessing.Event(), multiprocessing.Value("i", 0)
    proc = multiprocessing.Process(target=_replacer,
                                   args=(str(target), [str(s) for s in sources], stop, count))
    proc.start()
    wrong_hash = handled = tracebacks = ok = 0
    errors: dict[str, int] = {}
    start = time.perf_counter()
    for _ in range(loads):
        try:
            model = load_generator(target)
        except CheckpointError as error:
            handled += 1
            key = str(error).splitlines()[0][-80:]
            errors[key] = errors.get(key, 0) + 1
            continue
        except Exception as error:
            tracebacks += 1
            errors[f"{type(error).__name__}: {str(error)[:80]}"] = 1
            continue
        which = digests.get(model.sha256)
        weight = model.generator.latent_fc.weight[0, 0].item()
        if which is None or abs(weight - marks[which]) > 1e-6:
            wrong_hash += 1
        else:
            ok += 1
    stop.set()
    proc.join()
    return {"loads": loads, "replacements_meanwhile": count.value,
            "recorded_hash_matches_weights": ok, "wrong_hash": wrong_hash,
            "checkpoint_errors": handled, "tracebacks": tracebacks, "errors": errors,
            "seconds": round(time.perf_counter() - start, 1)}


def _malformed_cases() -> dict:
    """The paper-layout damage of tests/test_crafted_models.py, self-contained so that the
    script also runs against a checkout from before that test existed."""
    from tests.reference.segal_layout import random_segal_generator_state

    def state(**changes):
        base = random_segal_generator_state((32, 32, 16, 8), 16, seed=2)
        for key, value in changes.items():
            key = key.replace("__", ".")
            if value is None:
                del base[key]
            else:
                base[key] = value
        return base

    blocks = {f"ScaleBlocks__{i}__convolv__0__module__weight": torch.zeros(8, 8, 3, 3)
              for i in range(4, 10)}
    return {
        "missing init conv": state(init_conv__0__module__weight=None),
        "missing a bias's weight": state(ScaleBlocks__1__convolv__3__module__weight=None),
        "missing top toRGB": state(toRGB__3__module__weight=None),
        "zero-size latent": state(latent_linear__0__module__weight=torch.zeros(0, 16)),
        "zero fan-in": state(init_conv__0__module__weight=torch.zeros(32, 0, 3, 3)),
        "rank 1 latent": state(latent_linear__0__module__weight=torch.zeros(512)),
        "scalar conv": state(ScaleBlocks__0__convolv__0__module__weight=torch.tensor(1.0)),
        "wrong rank conv": state(init_conv__0__module__weight=torch.zeros(32, 32)),
        "alpha nan": state(alpha=torch.tensor(float("nan"))),
        "alpha 7": state(alpha=torch.tensor(7.0)),
        "alpha text": state(alpha="half"),
        "not a tensor": state(toRGB__0__module__bias=[1.0, 2.0, 3.0]),
        "integer key": {**state(), 7: torch.zeros(1)},
        "ten blocks": state(**blocks),
        "gap in blocks": state(ScaleBlocks__7__convolv__0__module__weight=torch.zeros(8, 8, 3, 3)),
        "huge implied width": state(
            ScaleBlocks__2__convolv__0__module__weight=torch.zeros(20000, 1, 1, 1)),
        "list": [1, 2], "state_dict int": {"state_dict": 5}, "text": "x",
        "zeros file": None, "tar-like": None}


def attack_malformed_layouts(work: Path) -> dict:
    from cxrgan_desktop.engine.checkpoints import load_generator

    outcomes = {}
    for name, state in _malformed_cases().items():
        path = work / "malformed.pth"
        if name == "zeros file":
            path.write_bytes(bytes(1 << 20))
        elif name == "tar-like":
            path.write_bytes(b"\0" * 257 + b"ustar\0" + b"\0" * 300)
        else:
            torch.save(state, path)
        outcomes[name] = _classify(lambda p=path: load_generator(p))
    return _tally(outcomes)


def attack_control_names(work: Path) -> dict:
    from cxrgan_desktop.cli import main
    from cxrgan_desktop.engine.checkpoints import load_generator

    evil = "\x1b[31mred\x1b[0m\nforged: line\u202e"
    base = _small_native(work / "named.safetensors")
    metadata, tensors = _header(base)
    metadata["name"] = evil
    path = work / "evil\x1b[2J.safetensors"
    _rewrite(path, metadata, tensors)
    shown = []
    name = load_generator(path).name
    shown.append(("loaded name", name))
    out = io.StringIO()
    import contextlib
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code_import = main(["import-model", str(path), "--name", "ok-name"])
        code_bad = main(["import-model", str(path), "--name", evil])
        models_dir = Path(os.environ["CXRGAN_DATA_DIR"]) / "models"
        shutil.copyfile(base, models_dir / "stem\x1b[31m.safetensors")
        main(["models"])
        main(["info", str(path)])
    text = out.getvalue()
    raw_controls = sum(text.count(c) for c in ("\x1b", "\u202e")) + name.count("\x1b")
    return {"names tried": 3, "import with control-char name exit code": code_bad,
            "import with clean name exit code": code_import,
            "raw control characters printed": raw_controls, "loaded name shown as": name}


def _zip_member(size_mb: int, stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", method) as archive, archive.open(
            "00020_PGGAN_CHEST_XRAY/Final_Full_Model.pth", "w", force_zip64=True) as member:
        block = bytes(1 << 20)
        for _ in range(size_mb):
            member.write(block)
    return buffer.getvalue()


def _serve(files: dict[str, bytes]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


_KILL_CHILD = """
import os, signal, sys
from cxrgan_desktop import model_install
chunks = 0
real = model_install.check_cancel
def counting(cancel):
    global chunks
    chunks += 1
    if chunks == 150:  # 150 MB into the unpacking
        os.kill(os.getpid(), signal.SIGKILL)
    real(cancel)
model_install.check_cancel = counting
model_install.fetch_known_model("segal2020-pggan-cxr14", url=sys.argv[1])
"""


def attack_downloads(work: Path) -> dict:
    from cxrgan_desktop.core import paths
    from cxrgan_desktop.store.install import fetch_known_model
    from tests.reference.segal_layout import random_segal_generator_state

    paper = io.BytesIO()
    torch.save(random_segal_generator_state((32, 32, 16, 8), 16, seed=5), paper)
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("00020_PGGAN_CHEST_XRAY/Final_Full_Model.pth", paper.getvalue())
    bomb = _zip_member(1024)  # 1 GiB of zeros
    files = {"/good.zip": good.getvalue(), "/bomb.zip": bomb,
             "/stored.zip": _zip_member(300, stored=True)}
    httpd, url = _serve(files)
    downloads = paths.cache_dir() / "downloads"
    result: dict = {"bomb_zip_mb": round(len(bomb) / 1e6, 2), "bomb_unpacks_to_mb": 1073.7}
    start = time.perf_counter()
    try:
        fetch_known_model("segal2020-pggan-cxr14", url=f"{url}/bomb.zip")
        result["bomb"] = "accepted"
    except Exception as error:
        result["bomb"] = f"{type(error).__name__}: {str(error)[:200]}"
    result["bomb_seconds"] = round(time.perf_counter() - start, 2)
    result["left_in_downloads_after_bomb"] = sorted(p.name for p in downloads.iterdir()) \
        if downloads.exists() else []
    killed = subprocess.run([sys.executable, "-c", _KILL_CHILD, f"{url}/stored.zip"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            timeout=600)
    result["killed_unpack_exit"] = killed.returncode
    left = list(downloads.rglob("*")) if downloads.exists() else []
    result["left_after_kill_mb"] = round(sum(p.stat().st_size for p in left if p.is_file())
                                         / 1e6, 1)
    fetch_known_model("segal2020-pggan-cxr14", url=f"{url}/good.zip", force=True)
    left = list(downloads.rglob("*")) if downloads.exists() else []
    result["left_after_next_successful_run_mb"] = round(
        sum(p.stat().st_size for p in left if p.is_file()) / 1e6, 1)
    httpd.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loads", type=int, default=1000)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cxrgan-attacks-"))
    for name in ("DATA", "CACHE", "CONFIG"):
        os.environ[f"CXRGAN_{name}_DIR"] = str(root / name.lower())
    (root / "data" / "models").mkdir(parents=True)
    work = root / "work"
    work.mkdir()
    attacks = {"huge_channels": attack_huge_channels, "bad_values": attack_bad_values,
               "swapped_file": lambda w: attack_swapped_file(w, args.loads),
               "malformed_layouts": attack_malformed_layouts,
               "control_names": attack_control_names, "downloads": attack_downloads}
    report = {}
    try:
        for name, attack in attacks.items():
            if args.only and name not in args.only:
                continue
            try:
                report[name] = attack(work)
            except Exception as error:  # the attack harness itself hit an uncaught error
                report[name] = {"uncaught": f"{type(error).__name__}: {str(error)[:300]}"}
            print(json.dumps({name: report[name]}, ensure_ascii=True), file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=1, ensure_ascii=True))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
