"""Packaging: the files the PyInstaller spec and the desktop integration name exist and are
well formed; the self-test the bundle is checked with works from source; and (slow, opt-in)
the bundle itself builds and passes its self-test without the project's environment."""

from __future__ import annotations

import ast
import configparser
import json
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


def _spec_shipped_folders() -> dict[str, str]:
    """SHIPPED_FOLDERS as the spec lists it (read, not run: the spec needs PyInstaller)."""
    tree = ast.parse((PACKAGING / "cxrgan-desktop.spec").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SHIPPED_FOLDERS":
            return dict(ast.literal_eval(node.value))
    raise AssertionError("the spec has no SHIPPED_FOLDERS")


def _data_files_in_package() -> list[Path]:
    return [p for p in (ROOT / "cxrgan_desktop").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]


def test_data_lives_in_the_top_level_folders_and_the_spec_ships_them():
    """The design card's layout: no data file hides in the package, where the spec and the
    wheel would have to know of it; the spec ships both top-level folders inside the package,
    where core/shipped.py looks first."""
    assert _data_files_in_package() == []
    assert _spec_shipped_folders() == {"resources": "cxrgan_desktop/resources",
                                       "models": "cxrgan_desktop/models"}
    for folder in ("resources", "models"):
        assert (ROOT / folder).is_dir()
    for name in ("entry_gui.py", "entry_cli.py"):
        assert (PACKAGING / name).is_file(), name


def test_pyproject_lists_every_package_folder():
    """setuptools is given an explicit package list (find cannot map the top-level data
    folders into the package): a new code folder missing from it would be missing from the
    wheel, so compare it with the folders on disk."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    code = {".".join(p.parent.relative_to(ROOT).parts)
            for p in (ROOT / "cxrgan_desktop").rglob("*.py") if "__pycache__" not in p.parts}
    data = {"cxrgan_desktop." + ".".join(p.relative_to(ROOT).parts)
            for folder in ("resources", "models") for p in [ROOT / folder,
                                                            *(ROOT / folder).rglob("*")]
            if p.is_dir()}
    assert listed == code | data
    assert config["package-dir"] == {"cxrgan_desktop.resources": "resources",
                                     "cxrgan_desktop.models": "models"}


@pytest.mark.slow
def test_an_installed_wheel_finds_its_resources_and_models(tmp_path):
    """Build the wheel, install it into a bare folder and ask it, from outside the checkout,
    for every kind of shipped file: presets, help texts, style sheet, icon, label statistics,
    the model cards and the demo weights."""
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(wheels)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                              "--target", str(site), *map(str, wheels.glob("*.whl"))],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = """
import json
from cxrgan_desktop.core import shipped
from cxrgan_desktop.engine.training.config import load_config, preset_names
from cxrgan_desktop.labels.distribution import load_shipped_stats
from cxrgan_desktop.store import zoo
print(json.dumps({
    "package": str(shipped.PACKAGE_DIR),
    "resources": str(shipped.shipped_dir("resources")),
    "models": str(shipped.shipped_dir("models")),
    "presets": preset_names(),
    "demo_preset": load_config("demo-phantom-64").target_resolution,
    "about": shipped.read_resource_text("help", "about.html")[:40],
    "style": shipped.read_resource_text("styles", "reader.qss"),
    "icon": shipped.resource_path("icons", "cxrgan-desktop.svg").is_file(),
    "label_images": load_shipped_stats()["n_images"],
    "cards": sorted(card.id for card in zoo.known_cards()),
    "demo_weights": [str(m.path) for m in zoo.bundled_models()],
}))
"""
    env = _clean_env(tmp_path)
    env["PYTHONPATH"] = str(site)
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout)
    installed = site / "cxrgan_desktop"
    assert found["package"] == str(installed)  # not the checkout
    assert found["resources"] == str(installed / "resources")
    assert found["models"] == str(installed / "models")
    assert set(found["presets"]) >= {"tiny64", "demo-phantom-64", "paper1024"}
    assert found["demo_preset"] == 64
    assert "cxrgan-desktop" in found["about"] and "QWidget" in found["style"]
    assert found["icon"] and found["label_images"] > 100_000
    assert {"segal2020-pggan-cxr14", "demo-phantom-64"} <= set(found["cards"])
    assert found["demo_weights"] == [str(installed / "models" / "demo-phantom-64.safetensors")]


def test_desktop_entry_icons_and_metainfo():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "cxrgan-desktop.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Icon"] == "cxrgan-desktop"
    assert section["Exec"].split()[0] == "cxrgan-desktop"
    from PIL import Image

    for size in (16, 32, 48, 64, 128, 256, 512):
        with Image.open(ROOT / "resources" / "icons" / f"cxrgan-desktop-{size}.png") as icon:
            assert icon.size == (size, size) and icon.mode == "RGBA"
    svg = xml.dom.minidom.parse(str(ROOT / "resources" / "icons" / "cxrgan-desktop.svg"))
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
    run, _ = _self_test([sys.executable, "-m", "cxrgan_desktop.gui.shell.app"],
                        phantom_generator.path, out, _clean_env(tmp_path))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "self-test passed" in run.stdout
    image = read_png16(out)
    assert image.shape == (32, 32) and image.std() > 0
    failed, _ = _self_test([sys.executable, "-m", "cxrgan_desktop.gui.shell.app"],
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
