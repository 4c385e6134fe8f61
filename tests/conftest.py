"""Test isolation: no real home folders, no display, one torch thread.

One thread, whatever the machine or its load: results of the networks trained inside the
session (the phantom classifier and generator) depend on how reductions are split among
threads, and tests must get the same numbers everywhere. Small networks are no slower on
one thread, and subprocesses inherit the setting.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # without it Qt aborts the whole run
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"  # before torch or numpy start their pools

import pytest  # noqa: E402
import torch  # noqa: E402  (after the thread settings above)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_user_folders(tmp_path, monkeypatch):
    """Point the data, cache and config folders at the test's own temporary folder."""
    for name in ("DATA", "CACHE", "CONFIG"):
        folder = tmp_path / f"user_{name.lower()}"
        monkeypatch.setenv(f"CXRGAN_{name}_DIR", str(folder))
    yield


@pytest.fixture
def main_window(qtbot):
    """The main window, once its device probe has finished; a running job is stopped after
    the test."""
    from cxrgan_desktop.gui.shell.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: not win._device_probe.is_running(), timeout=20_000)
    yield win
    if win.runner is not None:
        win.runner.cancel()
        win.runner.wait()


@pytest.fixture
def shown_viewer(qtbot):
    """An image viewer on screen at a fixed size, exposed, with no image yet."""
    from cxrgan_desktop.gui.viewer.viewer import ImageViewer

    widget = ImageViewer()
    qtbot.addWidget(widget)
    widget.resize(700, 640)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def dialogs(monkeypatch):
    """Message boxes recorded as (kind, title, text) instead of shown."""
    from PySide6.QtWidgets import QMessageBox

    shown = []
    for kind in ("critical", "warning", "information"):
        monkeypatch.setattr(QMessageBox, kind,
                            lambda *args, k=kind: shown.append((k, args[1], args[2])) or 0)
    return shown


@pytest.fixture(scope="session")
def phantom_study_sources(tmp_path_factory):
    """make(n, size, seeds) -> (real folder, synthetic folder): two sets of procedural
    phantoms standing in for the two classes of a reader study (one image per patient)."""
    from cxrgan_desktop.tasks.phantom import write_phantoms

    def make(n: int, size: int, seeds: tuple[int, int]):
        root = tmp_path_factory.mktemp("study_sources")
        return (write_phantoms(root / "real", n=n, size=size, seed=seeds[0],
                               images_per_patient=1),
                write_phantoms(root / "synthetic", n=n, size=size, seed=seeds[1],
                               images_per_patient=1))

    return make


# -- small models trained on phantoms, shared by the classifier and LCO tests -----------------

LCO_LABELS = ("Cardiomegaly", "Effusion", "Pneumothorax")


@pytest.fixture(scope="session")
def lco_phantoms(tmp_path_factory):
    """240 phantoms at 64 px where each of three findings is common (exact labels), one image
    per patient."""
    from cxrgan_desktop.labels.distribution import LabelDistribution
    from cxrgan_desktop.tasks.phantom import write_phantoms

    folder = tmp_path_factory.mktemp("lco_phantoms")
    distribution = LabelDistribution.independent(
        {"Cardiomegaly": 0.4, "Effusion": 0.4, "Pneumothorax": 0.3})
    write_phantoms(folder, n=240, size=64, seed=3, distribution=distribution,
                   images_per_patient=1)
    return folder


@pytest.fixture(scope="session")
def phantom_classifier(lco_phantoms, tmp_path_factory):
    """A densenet-small trained on the phantoms at 64 px: (report, loaded classifier)."""
    import torch

    from cxrgan_desktop.engine.classifier.data import labelled_images
    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.classifier.training import ClassifierTrainConfig, train_classifier
    from cxrgan_desktop.engine.training.dataset import DatasetSpec

    work = tmp_path_factory.mktemp("classifier")
    spec = DatasetSpec(lco_phantoms, lco_phantoms / "Data_Entry_phantom.csv")
    data = labelled_images(spec, LCO_LABELS, 64, cache_dir=work / "cache")
    config = ClassifierTrainConfig(name="phantom-small", architecture="densenet-small",
                                   input_size=64, labels=LCO_LABELS, epochs=10, batch_size=16)
    report = train_classifier(config, data, work / "phantom-small.safetensors",
                              device=torch.device("cpu"))
    return report, load_classifier(report.path)


@pytest.fixture(scope="session")
def judge_classifier(tmp_path_factory):
    """A second densenet-small, trained independently of ``phantom_classifier``, which LCO
    steers with: other phantoms (seed 17, not 3), another training seed (2, not 0), and its
    labels in reverse order, so that reading its outputs by position instead of by name
    shows. A judge that is the steering classifier agrees by construction; this one does not.
    (report, loaded classifier)."""
    import torch

    from cxrgan_desktop.engine.classifier.data import labelled_images
    from cxrgan_desktop.engine.classifier.files import load_classifier
    from cxrgan_desktop.engine.classifier.training import ClassifierTrainConfig, train_classifier
    from cxrgan_desktop.engine.training.dataset import DatasetSpec
    from cxrgan_desktop.labels.distribution import LabelDistribution
    from cxrgan_desktop.tasks.phantom import write_phantoms

    work = tmp_path_factory.mktemp("judge")
    distribution = LabelDistribution.independent(
        {"Cardiomegaly": 0.4, "Effusion": 0.4, "Pneumothorax": 0.3})
    phantoms = write_phantoms(work / "phantoms", n=240, size=64, seed=17,
                              distribution=distribution, images_per_patient=1)
    labels = LCO_LABELS[::-1]
    spec = DatasetSpec(phantoms, phantoms / "Data_Entry_phantom.csv")
    data = labelled_images(spec, labels, 64, cache_dir=work / "cache")
    config = ClassifierTrainConfig(name="phantom-judge", architecture="densenet-small",
                                   input_size=64, labels=labels, epochs=10, batch_size=16,
                                   seed=2)
    report = train_classifier(config, data, work / "phantom-judge.safetensors",
                              device=torch.device("cpu"))
    return report, load_classifier(report.path)


@pytest.fixture(scope="session")
def phantom_generator(lco_phantoms, tmp_path_factory):
    """A tiny PGGAN (latent 32, up to 32 px) trained briefly on the phantoms."""
    from cxrgan_desktop.engine.checkpoints import load_generator
    from cxrgan_desktop.engine.training.config import TrainConfig
    from cxrgan_desktop.engine.training.dataset import DatasetSpec
    from cxrgan_desktop.engine.training.image_cache import build_cache
    from cxrgan_desktop.engine.training.loop import TrainingData, train

    work = tmp_path_factory.mktemp("generator")
    cache = build_cache(DatasetSpec(lco_phantoms), work / "cache", 32)
    config = TrainConfig(name="lco-tiny", latent_size=32, channels=(32, 32, 16, 16),
                         images_first=256, images_fade=256, images_stable=256,
                         images_final_extra=512, batch_sizes={4: 16, 8: 16, 16: 16, 32: 16},
                         log_every=256, sample_every=4096, checkpoint_every=4096,
                         sample_count=4)
    data = TrainingData(cache.count, cache.fingerprint, cache.description, cache.batch)
    result = train(config, data, work / "run", device="cpu")
    return load_generator(result.final_model)


@pytest.fixture(scope="session")
def experiment_data(lco_phantoms, phantom_generator, phantom_classifier, tmp_path_factory):
    """Real: the phantoms, regrouped two images per patient (so the split has follow-ups to
    keep together). Synthetic: an LCO archive of the phantom generator, steered by the
    phantom classifier to the real label distribution."""
    import dataclasses

    from cxrgan_desktop.engine.lco import LCOSettings
    from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv, write_data_entry_csv
    from cxrgan_desktop.labels.distribution import LabelDistribution
    from cxrgan_desktop.tasks.archive import CSV_NAME, build_archive, distribution_plan

    root = tmp_path_factory.mktemp("tstr")
    entries = read_data_entry_csv(lco_phantoms / "Data_Entry_phantom.csv")
    grouped = [dataclasses.replace(e, patient_id=1000 + k // 2) for k, e in
               enumerate(entries)]
    write_data_entry_csv(root / "real_labels.csv", grouped)
    _, loaded = phantom_classifier
    distribution = LabelDistribution.independent(
        {"Cardiomegaly": 0.4, "Effusion": 0.4, "Pneumothorax": 0.3})
    plan = distribution_plan(distribution, 40, seed=2, labels=LCO_LABELS)
    archive = root / "archive"
    build_archive(phantom_generator, loaded, plan, archive,
                  settings=LCOSettings(steps=30, learning_rate=0.1, restarts=1, batch_size=8))
    return lco_phantoms, root / "real_labels.csv", archive, archive / CSV_NAME


# -- a published model archive, served on loopback -------------------------------------------

def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def paper_file() -> bytes:
    """A generator in the paper's layout (small widths), as torch.save writes it."""
    import io

    import torch

    from tests.reference.segal_layout import random_segal_generator_state

    buffer = io.BytesIO()
    torch.save(random_segal_generator_state((32, 32, 16, 8), 16, seed=5), buffer)
    return buffer.getvalue()


@pytest.fixture
def archive_server(paper_file):
    """(URL, archives): a loopback server publishing zips as the paper's model zoo does."""
    import http.server
    import threading

    archives = {"/good.zip": _zip({"00020_PGGAN_CHEST_XRAY/Final_Full_Model.pth": paper_file,
                                   "00020_PGGAN_CHEST_XRAY/__init__.py": b"# medigan glue\n"}),
                "/other.zip": _zip({"README.txt": b"nothing here"}),
                "/broken.zip": b"PK\x03\x04 not really a zip"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = archives.get(self.path.split("?")[0])
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
    yield f"http://127.0.0.1:{httpd.server_address[1]}", archives
    httpd.shutdown()
    httpd.server_close()


# -- the FID network on deterministic random weights (the published file is not reachable) ---

@pytest.fixture(scope="session")
def fid_weights_file(tmp_path_factory):
    """(path, spec): random weights in the FID layout, and a spec whose hash prefix fits."""
    from cxrgan_desktop.core.fileio import sha256_file
    from cxrgan_desktop.metrics.inception_weights import WeightsSpec
    from tests.reference.fid_random_weights import write_weights

    path = write_weights(tmp_path_factory.mktemp("fid_weights"))
    spec = WeightsSpec(file_name=path.name, url="http://127.0.0.1:9/unreachable.pth",
                       sha256_prefix=sha256_file(path)[:8],
                       description="the test FID network (random weights)")
    return path, spec


@pytest.fixture
def fid_weights(fid_weights_file, monkeypatch):
    """The random weights made the standard file for one test; returns their path."""
    from cxrgan_desktop.metrics import inception_weights

    path, spec = fid_weights_file
    monkeypatch.setattr(inception_weights, "STANDARD", spec)
    return path


@pytest.fixture(scope="session")
def fid_inception(fid_weights_file):
    """The loaded random-weights network, shared (loading 91 MB takes a second)."""
    from cxrgan_desktop.metrics.inception_weights import load_inception

    path, spec = fid_weights_file
    return load_inception(path, spec)
