"""Pathology classifier: DenseNet layout, AUROC, patient-wise split, files, CheXNet import,
training on phantoms (exact labels) and the CLI."""

import io
import math
import pickle
import zipfile

import numpy as np
import pytest
import torch

from cxrgan_desktop.cli import main
from cxrgan_desktop.engine.checkpoints import CheckpointError, UnsafeCheckpointError
from cxrgan_desktop.engine.classifier.data import cache_resolution, patient_split
from cxrgan_desktop.engine.classifier.densenet import ARCHITECTURES, DenseNet
from cxrgan_desktop.engine.classifier.files import chexnet_key, load_classifier, save_classifier
from cxrgan_desktop.engine.classifier.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClassifierSpec,
    PathologyClassifier,
    resize_images,
)
from cxrgan_desktop.engine.classifier.training import balanced_bce, balanced_weights
from cxrgan_desktop.labels.chestxray14 import FINDINGS
from tests.conftest import LCO_LABELS


def test_patient_split_keeps_each_patient_on_one_side():
    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(50), rng.integers(1, 9, size=50))  # follow-up images
    train, val = patient_split(patients, 0.2, seed=5)
    assert set(patients[train]).isdisjoint(patients[val])
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(patients)))
    assert 0.15 < len(val) / len(patients) < 0.35
    again = patient_split(patients, 0.2, seed=5)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(patient_split(patients, 0.2, seed=6)[1], val)
    with pytest.raises(ValueError, match="at least two patients"):
        patient_split(np.zeros(10, dtype=np.int64), 0.2, seed=0)


def test_class_balanced_loss_weighs_rare_positives_up():
    targets = np.zeros((100, 2), dtype=bool)
    targets[:10, 0] = True  # 10 % positives
    w_pos, w_neg = balanced_weights(targets)
    assert w_pos[0] == pytest.approx(5.0) and w_neg[0] == pytest.approx(100 / 180)
    assert w_pos[1] == 0.0 and w_neg[1] == pytest.approx(0.5)  # no positives: no weight
    # all-zero predictions: positives and negatives of label 0 contribute equally
    logits = torch.zeros(100, 2)
    loss = balanced_bce(logits, torch.from_numpy(targets.astype(np.float32)), w_pos, w_neg)
    assert float(loss) == pytest.approx(math.log(2) * (1.0 + 0.5) / 2, rel=1e-5)


def test_densenet121_has_torchvisions_parameter_names_and_count():
    net = DenseNet(ARCHITECTURES["densenet121"], num_outputs=14, in_channels=1)
    names = set(net.state_dict())
    for key in ("features.conv0.weight", "features.norm0.running_var",
                "features.denseblock1.denselayer1.norm1.weight",
                "features.denseblock4.denselayer16.conv2.weight",
                "features.transition3.conv.weight", "features.norm5.bias",
                "classifier.weight"):
        assert key in names
    # torchvision's densenet121: 7,978,856 parameters with 3 input channels and 1000 classes
    expected = 7_978_856 - (1024 * 1000 + 1000) + (1024 * 14 + 14) - 64 * 2 * 49
    assert sum(p.numel() for p in net.parameters()) == expected
    assert net.classifier.in_features == ARCHITECTURES["densenet121"].feature_channels == 1024


def test_resize_is_the_caches_box_filter_for_powers_of_two_and_differentiable():
    images = torch.rand(2, 1, 64, 64, requires_grad=True)
    small = resize_images(images, 16)
    expected = images.detach().reshape(2, 1, 16, 4, 16, 4).mean(dim=(3, 5))
    assert torch.allclose(small, expected, atol=1e-6)
    small.sum().backward()
    assert torch.allclose(images.grad, torch.full_like(images, 1 / 16))
    assert resize_images(images, 48).shape[-1] == 48
    assert resize_images(images, 64) is images
    assert cache_resolution(224) == 256 and cache_resolution(64) == 64


def test_spec_refuses_what_cannot_work():
    with pytest.raises(ValueError, match="unknown classifier architecture"):
        ClassifierSpec("resnet50", FINDINGS, 256)
    with pytest.raises(ValueError, match="below the DenseNet minimum"):
        ClassifierSpec("densenet-small", FINDINGS, 16)
    with pytest.raises(ValueError, match="repeated label"):
        ClassifierSpec("densenet-small", ("A", "A"), 64)


def _small(labels=LCO_LABELS, size=64):
    torch.manual_seed(0)
    return PathologyClassifier(ClassifierSpec("densenet-small", labels, size)).eval()


def test_native_file_round_trip_and_refusals(tmp_path):
    classifier = _small()
    with torch.no_grad():  # give batch norm statistics that are not the defaults
        for module in classifier.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
    path = save_classifier(tmp_path / "c.safetensors", classifier, "test",
                           {"training_data": "none"})
    loaded = load_classifier(path)
    images = torch.rand(3, 1, 128, 128)
    assert torch.equal(loaded.classifier.probabilities(images), classifier.probabilities(images))
    assert loaded.labels == LCO_LABELS and loaded.name == "test"
    assert loaded.provenance["training_data"] == "none" and len(loaded.sha256) == 64

    from cxrgan_desktop.engine.checkpoints import save_generator
    from cxrgan_desktop.engine.checkpoints.output import OutputAdapter
    from cxrgan_desktop.engine.pggan import Generator, PGGANConfig

    generator_file = save_generator(tmp_path / "g.safetensors", Generator(PGGANConfig(
        latent_size=8, channels=(8, 8))), OutputAdapter(), "g")
    with pytest.raises(CheckpointError, match="not a cxrgan-desktop classifier"):
        load_classifier(generator_file)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="damaged"):
        load_classifier(truncated)
    with pytest.raises(CheckpointError, match="no such file"):
        load_classifier(tmp_path / "missing.safetensors")


def _chexnet_checkpoint(net: DenseNet) -> dict:
    """The layout of the CheXNet reproduction: DataParallel prefix, pre-0.4 torchvision
    spelling (norm.1), and a Sequential(Linear, Sigmoid) head."""
    state = {}
    for key, value in net.state_dict().items():
        old = key.replace("norm1", "norm.1").replace("conv1", "conv.1") \
            .replace("norm2", "norm.2").replace("conv2", "conv.2") \
            .replace("classifier.", "classifier.0.")
        state["module.densenet121." + old] = value
    return {"epoch": 7, "best_loss": 0.15, "state_dict": state}


def test_chexnet_checkpoint_imports_by_key_mapping(tmp_path):
    torch.manual_seed(1)
    net = DenseNet(ARCHITECTURES["densenet121"], num_outputs=14, in_channels=3).eval()
    path = tmp_path / "model.pth.tar"
    torch.save(_chexnet_checkpoint(net), path)
    assert chexnet_key("module.densenet121.features.denseblock2.denselayer3.norm.2.weight") \
        == "features.denseblock2.denselayer3.norm2.weight"
    loaded = load_classifier(path)
    spec = loaded.classifier.spec
    assert (spec.input_size, spec.in_channels, spec.labels) == (224, 3, FINDINGS)
    gray = torch.rand(2, 1, 224, 224)
    rgb = (gray.expand(-1, 3, -1, -1) - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(loaded.classifier(gray), net(rgb), atol=1e-5)


def test_chexnet_import_refuses_code_and_other_networks(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo owned > " + str(tmp_path / "owned"),))

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"state_dict": Evil()}))
        archive.writestr("archive/version", "3\n")
    evil = tmp_path / "evil.pth.tar"
    evil.write_bytes(raw.getvalue())
    with pytest.raises(UnsafeCheckpointError):
        load_classifier(evil)
    assert not (tmp_path / "owned").exists()

    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(CheckpointError, match="not a classifier this application knows"):
        load_classifier(other)
    wrong_head = DenseNet(ARCHITECTURES["densenet121"], num_outputs=5, in_channels=3)
    torch.save(_chexnet_checkpoint(wrong_head), tmp_path / "five.pth.tar")
    with pytest.raises(CheckpointError, match="5 outputs"):
        load_classifier(tmp_path / "five.pth.tar")


def test_training_on_phantoms_learns_the_findings(phantom_classifier):
    report, loaded = phantom_classifier
    aurocs = {r.label: r.auroc for r in report.validation.labels}
    assert set(aurocs) == set(LCO_LABELS)
    assert report.validation.mean_auroc > 0.75, report.validation.table()
    assert min(aurocs.values()) > 0.6, report.validation.table()
    assert report.split["train_images"] + report.split["val_images"] == 240
    assert loaded.provenance["split"] == report.split
    assert loaded.provenance["validation"]["labels"][0]["label"] == LCO_LABELS[0]
    assert loaded.classifier.input_size == 64


def test_cli_train_eval_import_list(lco_phantoms, tmp_path, capsys):
    csv = lco_phantoms / "Data_Entry_phantom.csv"
    out = tmp_path / "quick.safetensors"
    assert main(["classifier", "train", "--data", str(lco_phantoms), "--labels", str(csv),
                 "--arch", "densenet-small", "--input-size", "32", "--epochs", "1",
                 "--max-images", "64", "--name", "quick", "--out", str(out),
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "split by patient" in text and "Cardiomegaly" in text and out.exists()
    report = tmp_path / "eval.json"
    assert main(["classifier", "eval", "--classifier", str(out), "--data", str(lco_phantoms),
                 "--labels", str(csv), "--max-images", "40", "--json", str(report),
                 "--device", "cpu"]) == 0
    import json

    data = json.loads(report.read_text())
    assert data["images"] == 40 and len(data["labels"]) == 14
    assert main(["classifier", "import", str(out), "--name", "mine"]) == 0
    assert main(["classifier", "import", str(out), "--name", "mine"]) == 2
    assert main(["classifier", "list"]) == 0
    assert "mine: densenet-small, 14 labels, 32 px" in capsys.readouterr().out
    assert main(["classifier", "train", "--data", str(lco_phantoms), "--labels",
                 str(tmp_path / "none.csv")]) == 2
