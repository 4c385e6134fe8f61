"""Crafted and damaged model files (security review, issue 18 group 5): each is refused with a
CheckpointError naming the file, before any network is built from claims the file cannot
back; names from files are escaped; a generator whose output is not finite fails loudly."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_bytes

from cxrgan_desktop.core import paths, torch_files
from cxrgan_desktop.core.model_errors import NonFiniteOutputError
from cxrgan_desktop.core.names import check_model_name, printable
from cxrgan_desktop.engine.checkpoints import (
    CheckpointError,
    OutputAdapter,
    load_generator,
    loader,
    save_generator,
)
from cxrgan_desktop.engine.checkpoints.native import parameters_only
from cxrgan_desktop.engine.checkpoints.validate import generator_shapes
from cxrgan_desktop.engine.pggan import PAPER_CHANNELS, Generator, PGGANConfig
from tests.reference.segal_layout import random_segal_generator_state

CHANNELS = (32, 32, 16, 8)
LATENT = 16


@pytest.fixture
def native_file(tmp_path):
    """(path, tensors, metadata) of a small valid native model."""
    config = PGGANConfig(latent_size=LATENT, channels=CHANNELS)
    torch.manual_seed(0)
    path = save_generator(tmp_path / "m.safetensors", Generator(config), OutputAdapter(), "m")
    header_length = struct.unpack("<Q", path.read_bytes()[:8])[0]
    header = json.loads(path.read_bytes()[8:8 + header_length])
    from safetensors.torch import load_file

    return path, load_file(path), header["__metadata__"]


def _rewrite(path, tensors, metadata, **changes):
    metadata = {**metadata, **changes}
    path.write_bytes(safetensors_bytes(tensors, metadata=metadata))
    return path


@pytest.fixture
def no_network_built(monkeypatch):
    """Fail the test if the loader constructs a Generator."""
    def refuse(*args, **kwargs):
        raise AssertionError("a Generator was built for a file that should be refused")

    monkeypatch.setattr(loader, "Generator", refuse)


@pytest.mark.parametrize("config", [
    PGGANConfig(latent_size=LATENT, channels=CHANNELS),
    PGGANConfig(latent_size=8, channels=(16,), image_channels=3),
    PGGANConfig(latent_size=512, channels=PAPER_CHANNELS, image_channels=3)])
def test_computed_shapes_are_the_generators(config):
    """The shape check runs before building: it must describe the module exactly."""
    module = {k: tuple(v.shape) for k, v in parameters_only(Generator(config)).items()}
    assert generator_shapes(config) == module


def test_huge_claimed_channels_are_refused_before_anything_is_built(
        native_file, no_network_built):
    path, tensors, metadata = native_file
    architecture = json.loads(metadata["architecture"])
    architecture["channels"] = [4096, 4096, 4096, 4096]  # within bounds, not in the file
    _rewrite(path, tensors, metadata, architecture=json.dumps(architecture))
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    text = str(info.value)
    assert "m.safetensors" in text and "nothing was built" in text
    assert "latent_fc.weight" in text and "[65536, 16]" in text
    architecture["channels"] = [20000] * 4  # the review's file: out of bounds
    _rewrite(path, tensors, metadata, architecture=json.dumps(architecture))
    with pytest.raises(CheckpointError, match="channel widths must be between 1 and 4096"):
        load_generator(path)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("architecture", {"latent_size": 10**9}, "latent_size must be between"),
    ("architecture", {"latent_size": 16.5}, "whole number"),
    ("architecture", {"channels": [32] * 12}, "1 to 9 widths"),
    ("depth", "99", "depth 99 is outside"),
    ("depth", "-1", "depth -1 is outside"),
    ("alpha", "nan", "alpha nan"),
    ("alpha", "inf", "alpha inf"),
    ("alpha", "2", "alpha 2.0"),
    ("output_adapter", '{"channels": true}', "channels must be 1 or 3"),
    ("architecture", "[1, 2]", "JSON object"),
    ("provenance", "[]", "provenance"),
])
def test_invalid_metadata_gets_a_clear_error(native_file, no_network_built, field, value,
                                              message):
    path, tensors, metadata = native_file
    if field == "architecture" and isinstance(value, dict):
        value = json.dumps({**json.loads(metadata["architecture"]), **value})
    _rewrite(path, tensors, metadata, **{field: value})
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite"),
    (3e38, "magnitude 3e\\+38"), (-1e9, "magnitude 1e\\+09")])
def test_damaged_values_are_refused_in_native_files(native_file, no_network_built, value,
                                                    message):
    path, tensors, metadata = native_file
    tensors["G.blocks.1.conv0.weight"][0, 0, 0, 0] = value
    _rewrite(path, tensors, metadata)
    with pytest.raises(CheckpointError, match=f"blocks.1.conv0.weight: .*{message}"):
        load_generator(path)


@pytest.mark.parametrize("dtype", [torch.bool, torch.int32, torch.int64, torch.uint8])
def test_non_float_tensors_are_refused_in_native_files(native_file, no_network_built, dtype):
    path, tensors, metadata = native_file
    tensors["G.init_conv.weight"] = tensors["G.init_conv.weight"].to(dtype)
    _rewrite(path, tensors, metadata)
    with pytest.raises(CheckpointError, match="not floating point.*\n.*G.init_conv.weight"):
        load_generator(path)


@pytest.mark.parametrize("damage", ["nan", "inf", "huge", "bool", "int", "float64-overflow"])
def test_damaged_values_are_refused_in_paper_files(tmp_path, no_network_built, damage):
    state = random_segal_generator_state(CHANNELS, LATENT, seed=1)
    key = "ScaleBlocks.0.convolv.3.module.weight"
    weight = state[key]
    state[key] = {"nan": weight.fill_(float("nan")), "inf": weight.fill_(float("inf")),
                  "huge": weight.fill_(3e38), "bool": weight > 0, "int": weight.long(),
                  "float64-overflow": weight.double().fill_(1e300)}[damage]
    torch.save(state, tmp_path / "paper.pth")
    with pytest.raises(CheckpointError, match="paper.pth") as info:
        load_generator(tmp_path / "paper.pth")
    assert "ScaleBlocks.0.convolv.3" in str(info.value) or "blocks.0.conv1" in str(info.value)


def _paper_state():
    return random_segal_generator_state(CHANNELS, LATENT, seed=2)


def _without(key):
    state = _paper_state()
    del state[key]
    return state


def _with(**entries):
    state = _paper_state()
    state.update({k.replace("__", "."): v for k, v in entries.items()})
    return state


MALFORMED = {
    "missing init conv": _without("init_conv.0.module.weight"),
    "missing a bias's weight": _without("ScaleBlocks.1.convolv.3.module.weight"),
    "missing top toRGB": _without("toRGB.3.module.weight"),
    "zero-size latent": _with(**{"latent_linear__0__module__weight": torch.zeros(0, LATENT)}),
    "zero fan-in": _with(**{"init_conv__0__module__weight": torch.zeros(32, 0, 3, 3)}),
    "rank 1 latent": _with(**{"latent_linear__0__module__weight": torch.zeros(512)}),
    "scalar conv": _with(**{"ScaleBlocks__0__convolv__0__module__weight": torch.tensor(1.0)}),
    "wrong rank conv": _with(**{"init_conv__0__module__weight": torch.zeros(32, 32)}),
    "alpha nan": _with(alpha=torch.tensor(float("nan"))),
    "alpha 7": _with(alpha=torch.tensor(7.0)),
    "alpha text": _with(alpha="half"),
    "not a tensor": _with(**{"toRGB__0__module__bias": [1.0, 2.0, 3.0]}),
    "integer key": {**_paper_state(), 7: torch.zeros(1)},
    "ten blocks": _with(**{f"ScaleBlocks__{i}__convolv__0__module__weight":
                           torch.zeros(8, 8, 3, 3) for i in range(4, 10)}),
    "gap in blocks": _with(**{"ScaleBlocks__7__convolv__0__module__weight":
                              torch.zeros(8, 8, 3, 3)}),
    "huge implied width": _with(**{"ScaleBlocks__2__convolv__0__module__weight":
                                   torch.zeros(20000, 1, 1, 1)}),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_paper_layouts_get_a_checkpoint_error(tmp_path, no_network_built, name):
    path = tmp_path / "bad.pth"
    torch.save(MALFORMED[name], path)
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_generator(path)


@pytest.mark.parametrize("container", [[1, 2], {"state_dict": 5}, "text", None])
def test_paper_files_that_are_not_state_dicts(tmp_path, container):
    torch.save(container, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="odd.pth"):
        load_generator(tmp_path / "odd.pth")


@pytest.mark.parametrize(("content", "message"), [
    (bytes(4096), "only zero bytes"),
    (b"\x00" * 257 + b"ustar\x00" + b"\x00" * 300, "tar archive"),
    (b"GIF89a" + b"\x01" * 100, "neither a zip-based PyTorch checkpoint nor a pickle")])
def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path, content, message):
    """torch.load calls a file of zero bytes a "legacy .tar format" checkpoint; we don't."""
    (tmp_path / "x.pth").write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_generator(tmp_path / "x.pth")
    assert "legacy .tar" not in str(info.value)


def test_oversized_files_are_refused_before_reading(native_file, monkeypatch):
    path, _, _ = native_file
    monkeypatch.setattr(torch_files, "MAX_MODEL_FILE_BYTES", 1000)
    with pytest.raises(CheckpointError, match="too large"):
        load_generator(path)


def test_lying_safetensors_header_is_refused(native_file, no_network_built):
    """A header whose shapes claim more bytes than its offsets span."""
    path, _, _ = native_file
    data = bytearray(path.read_bytes())
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + length])
    header["G.latent_fc.weight"]["shape"] = [512, 16000]
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(data[8 + length:]))
    with pytest.raises(CheckpointError, match="damaged safetensors file.*latent_fc"):
        load_generator(path)


def test_the_hash_is_of_the_bytes_loaded(native_file, tmp_path, monkeypatch):
    """The file is replaced (as import-model --force does) after it is opened: the recorded
    hash and the weights are both the opened file's."""
    path, _, _ = native_file
    original = path.read_bytes()
    other = tmp_path / "other.safetensors"
    torch.manual_seed(99)
    save_generator(other, Generator(PGGANConfig(latent_size=LATENT, channels=CHANNELS)),
                   OutputAdapter(), "other")
    real_fstat = os.fstat

    def fstat_then_replace(fd):
        result = real_fstat(fd)
        os.replace(other, path)  # between open and read
        return result

    monkeypatch.setattr(torch_files.os, "fstat", fstat_then_replace)
    loaded = load_generator(path)
    monkeypatch.undo()
    assert loaded.sha256 == hashlib.sha256(original).hexdigest()
    assert loaded.name == "m"
    assert loaded.sha256 != hashlib.sha256(path.read_bytes()).hexdigest()  # now the other
    reference = load_generator(tmp_path / "m.safetensors")
    assert reference.name == "other"


def test_names_with_control_characters_are_escaped(native_file, tmp_path):
    path, tensors, metadata = native_file
    _rewrite(path, tensors, metadata, name="\x1b[31mred\nforged line\u202e")
    loaded = load_generator(path)
    assert loaded.name == "\\x1b[31mred\\nforged line\\u202e"
    assert printable(loaded.name) == loaded.name
    evil = tmp_path / "x\x1b[2Jy.pth"
    evil.write_bytes(b"junk")
    with pytest.raises(CheckpointError) as info:
        load_generator(evil)
    assert "\x1b" not in str(info.value) and "x\\x1b[2Jy.pth" in str(info.value)


@pytest.mark.parametrize("name", ["a\x1bb", "new\nline", "tab\there", "rtl\u202e", "", "a/b",
                                  ".hidden", "back\\slash", "x" * 200])
def test_model_names_with_control_characters_cannot_be_installed(native_file, name, capsys):
    from cxrgan_desktop.cli import main

    path, _, _ = native_file
    with pytest.raises(ValueError):
        check_model_name(name)
    if name:
        assert main(["import-model", str(path), "--name", name]) == 2
        err = capsys.readouterr().err
        assert "\x1b" not in err and "\u202e" not in err
        assert not paths.models_dir().exists() or not any(paths.models_dir().iterdir())


def test_model_list_escapes_file_names(native_file, capsys):
    from cxrgan_desktop.cli import main

    path, _, _ = native_file
    paths.models_dir().mkdir(parents=True, exist_ok=True)
    (paths.models_dir() / "evil\x1b[31m.safetensors").write_bytes(path.read_bytes())
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[31m" in out


# -- the renderer refuses non-finite output ------------------------------------------------------

def _poisoned(native_file):
    path, _, _ = native_file
    model = load_generator(path)
    with torch.no_grad():
        model.generator.to_image[model.generator.current_depth].bias.fill_(float("nan"))
    return model


def test_renderer_raises_on_non_finite_output(native_file):
    from cxrgan_desktop.engine.render import Renderer

    renderer = Renderer(_poisoned(native_file))
    with pytest.raises(NonFiniteOutputError, match=r"seed 5 index \[0, 1, 2, 3\].*damaged"):
        list(renderer.render_seeded(5, 6, 4))
    with pytest.raises(NonFiniteOutputError, match=r"image\(s\) \[0, 1\]"):
        renderer.render(np.zeros((2, LATENT), np.float32) + 1)


def test_generate_fails_instead_of_writing_black_images(native_file, tmp_path, capsys):
    from cxrgan_desktop.tasks.generate import generate_to_folder

    model = _poisoned(native_file)
    with pytest.raises(NonFiniteOutputError, match=r"seed 1 index \[0, 1\]"):
        generate_to_folder(model, tmp_path / "out", n=3, seed=1, batch_size=2)
    assert not list((tmp_path / "out").glob("*.png"))


def test_adapter_refuses_non_finite_raw_output():
    adapter = OutputAdapter(channels=3, value_range="unit")
    raw = torch.zeros(3, 3, 4, 4)
    raw[1, 2, 0, 0] = float("inf")  # the clamp would make this a white pixel
    with pytest.raises(NonFiniteOutputError, match=r"\[1\]"):
        adapter.apply(raw)
    assert adapter.apply(torch.zeros(2, 3, 4, 4)).shape == (2, 1, 4, 4)


def test_cli_reports_a_model_failing_mid_job_in_one_line(monkeypatch, capsys):
    from cxrgan_desktop import cli
    from cxrgan_desktop.cli import models as cli_models

    def failing(args):
        raise NonFiniteOutputError("m.safetensors", "the model m produced non-finite pixels")

    monkeypatch.setattr(cli_models, "_cmd_models", failing)  # bound when the parser is built
    assert cli.main(["models"]) == 2
    assert capsys.readouterr().err == ("cxrgan: error: m.safetensors: the model m produced "
                                       "non-finite pixels\n")
