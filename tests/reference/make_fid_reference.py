"""Write ``fid_reference_features.npz``: pytorch-fid's own network on our random weights.

Run once by hand (not in CI: it needs torchvision and pytorch-fid, which the project does not
depend on):

    pip install --target /tmp/refpkgs --no-deps torchvision pytorch-fid
    PYTHONPATH=/tmp/refpkgs python -m tests.reference.make_fid_reference

It builds pytorch-fid's ``fid_inception_v3`` graph (torchvision's Inception v3 with the FID
blocks swapped in), loads the deterministic random weights, and records the 2048-d pool
features of two fixed inputs. ``tests/test_fid_network.py`` checks our implementation against
them, so the two quirks and every layer are verified against an independent implementation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.library

from tests.reference.fid_random_weights import random_state, reference_inputs

# Only torchvision's pure-Python model classes are needed. A torchvision wheel whose compiled
# ops do not match the installed torch build fails at import while registering those ops;
# skip the registration (no op is used here).
_register_fake = torch.library.register_fake
torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
from pytorch_fid import inception as pf  # noqa: E402
from torchvision.models import inception as tv  # noqa: E402

torch.library.register_fake = _register_fake

OUT = Path(__file__).with_name("fid_reference_features.npz")


def pytorch_fid_network(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    net = tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pf.FIDInceptionE_1(1280)
    net.Mixed_7c = pf.FIDInceptionE_2(2048)
    net.load_state_dict(state, strict=True)
    return net.eval()


def pool_features(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's block sequence up to the final average pool (its InceptionV3 wrapper
    with normalize_input=False and resize_input=False)."""
    layers = [net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3,
              torch.nn.MaxPool2d(3, 2), net.Conv2d_3b_1x1, net.Conv2d_4a_3x3,
              torch.nn.MaxPool2d(3, 2), net.Mixed_5b, net.Mixed_5c, net.Mixed_5d,
              net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e,
              net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, torch.nn.AdaptiveAvgPool2d(1)]
    for layer in layers:
        x = layer(x)
    return x.flatten(1)


def main() -> None:
    torch.set_num_threads(1)
    with torch.inference_mode():
        features = pool_features(pytorch_fid_network(random_state(0)), reference_inputs())
    np.savez_compressed(OUT, features=features.double().numpy())
    print(f"wrote {OUT}: features {tuple(features.shape)}, mean {features.mean():.4f}, "
          f"std {features.std():.4f}")


if __name__ == "__main__":
    main()
