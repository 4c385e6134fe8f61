"""Packaging: the files the PyInstaller spec and the desktop integration name exist and are
well formed; the self-test the bundle is checked with works from source; and (slow, opt-in)
the bundle itself builds and passes its self-test without the project's environment."""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
import time
import xml.dom.minidom
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"


def _spec_package_data() -> list[str]:
    """PACKAGE_DATA as the spec lists it (read, not run: the spec needs PyInstaller)."""
    tree = ast.parse((PACKAGING / "cxrgan-desktop.spec").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PACKAGE_DATA":
            return list(ast.literal_eval(node.value))
    raise AssertionError("the spec has no PACKAGE_DATA list")


def test_the_spec_names_existing_data_and_covers_every_data_file():
    listed = _spec_package_data()
    for relative in listed:
        assert (ROOT / relative).exists(), relative
    shipped = [p for p in (ROOT / "cxrgan_desktop").rglob("*")
               if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in
               p.parts]
    assert shipped
    for file in shipped:  # a data file the spec forgot would be missing from the bundle
        relative = file.relative_to(ROOT).as_posix()
        assert any(relative == entry or relative.startswith(entry + "/") for entry in listed), \
            relative
    for name in ("entry_gui.py", "entry_cli.py", "icons/cxrgan-desktop-256.png"):
        assert (PACKAGING / name).is_file(), name


def test_the_wheel_package_data_covers_every_data_file_and_the_demo_models():
    """pyproject's package-data patterns (per package folder, namespace folders included)
    match every data file, so the wheel ships what the bundle ships: the demo weights too
    (checked once by building a wheel: both .safetensors files were in it)."""
    import fnmatch
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["*"]
    shipped = [p for p in (ROOT / "cxrgan_desktop").rglob("*")
               if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in
               p.parts]
    for file in shipped:
        assert any(fnmatch.fnmatch(file.name, pattern) for pattern in patterns), file
    models = ROOT / "cxrgan_desktop" / "models"
    names = {p.relative_to(models).as_posix() for p in shipped if models in p.parents}
    assert {"demo-phantom-64.safetensors", "demo-phantom-64.json",
            "classifiers/demo-phantom-64-classifier.safetensors",
            "demo-phantom-64-classifier.json"} <= names


def test_desktop_entry_icons_and_metainfo():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "cxrgan-desktop.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Icon"] == "cxrgan-desktop"
    assert section["Exec"].split()[0] == "cxrgan-desktop"
    from PIL import Image

    for size in (16, 32, 48, 64, 128, 256, 512):
        with Image.open(PACKAGING / "icons" / f"cxrgan-desktop-{size}.png") as icon:
            assert icon.size == (size, size) and icon.mode == "RGBA"
    svg = xml.dom.minidom.parse(str(ROOT / "cxrgan_desktop" / "resources" /
                                    "cxrgan-desktop.svg"))
    assert svg.documentElement.tagName == "svg"
    info = xml.dom.minidom.parse(str(PACKAGING / "io.github.cxrgan_desktop.metainfo.xml"))
    launchable = info.getElementsByTagName("launchable")[0].firstChild.data
    assert launchable == "cxrgan-desktop.desktop"
    from cxrgan_desktop import __version__

    assert info.getElementsByTagName("release")[0].getAttribute("version") == __version__


def _self_test(command: list[str], model: Path, out: Path, env: dict[str, str]):
    started = time.perf_counter()
    run = subprocess.run([*command, "--self-test", str(out), "--model", str(model)],
                         capture_output=True, text=True, timeout=600, env=env)
    return run, time.perf_counter() - started


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    for name in ("DATA", "CACHE", "CONFIG"):
        env[f"CXRGAN_{name}_DIR"] = str(tmp_path / name.lower())
    return env


def test_the_self_test_renders_an_image_from_source(phantom_generator, tmp_path):
    from cxrgan_desktop.imaging.png16 import read_png16

    out = tmp_path / "self_test.png"
    run, _ = _self_test([sys.executable, "-m", "cxrgan_desktop.gui.app"],
                        phantom_generator.path, out, _clean_env(tmp_path))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "self-test passed" in run.stdout
    image = read_png16(out)
    assert image.shape == (32, 32) and image.std() > 0
    failed, _ = _self_test([sys.executable, "-m", "cxrgan_desktop.gui.app"],
                           tmp_path / "missing.safetensors", tmp_path / "no.png",
                           _clean_env(tmp_path))
    assert failed.returncode == 1 and "self-test FAILED" in failed.stderr


def _pyinstaller_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("PyInstaller") is None


@pytest.mark.slow
@pytest.mark.skipif(_pyinstaller_missing() or bool(os.environ.get("CXRGAN_SKIP_BUNDLE")),
                    reason="builds the PyInstaller bundle (about 4 minutes, 1.2 GB): needs "
                    "the bundle extra; CXRGAN_SKIP_BUNDLE=1 skips it")
def test_the_bundle_builds_and_runs_without_the_project(phantom_generator, tmp_path):
    build = subprocess.run(["bash", str(PACKAGING / "build_bundle.sh")], cwd=ROOT,
                           capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stderr[-3000:]
    moved = tmp_path / "cxrgan-desktop"  # away from the checkout and its .venv
    shutil.copytree(ROOT / "dist" / "cxrgan-desktop", moved, symlinks=True)
    env = _clean_env(tmp_path)
    env["PATH"] = "/usr/bin:/bin"
    run, seconds = _self_test([str(moved / "cxrgan-desktop")], phantom_generator.path,
                              tmp_path / "bundle.png", env)
    assert run.returncode == 0, run.stderr[-3000:]
    version = subprocess.run([str(moved / "cxrgan"), "--version"], capture_output=True,
                             text=True, env=env, timeout=120)
    assert version.returncode == 0 and "cxrgan-desktop" in version.stdout
    print(f"bundle self-test: {seconds:.1f} s")
