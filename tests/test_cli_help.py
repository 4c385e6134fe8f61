"""Every ``cxrgan`` command explains itself: a description, help on every option, and
defaults shown only where they say something."""

from __future__ import annotations

import argparse

import pytest

from cxrgan_desktop.cli import build_parser


def _commands(parser: argparse.ArgumentParser, name: str = "cxrgan"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield f"{name} {sub_name}", sub
                yield from _commands(sub, f"{name} {sub_name}")


COMMANDS = dict(_commands(build_parser()))


def test_the_walk_finds_the_commands():
    assert {"cxrgan generate", "cxrgan study build", "cxrgan classifier list", "cxrgan fid",
            "cxrgan tstr"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_command_has_a_description_and_every_option_has_help(name):
    parser = COMMANDS[name]
    assert parser.description, f"{name} has no description"
    undocumented = [a.option_strings or [a.dest] for a in parser._actions
                    if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert not undocumented, f"{name}: no help for {undocumented}"
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    for action in parser._actions:  # a default named in the help is not repeated
        if action.help and "default" in action.help.lower():
            assert action.help.lower().count("default") == 1, action.option_strings


def test_a_missing_input_is_reported_before_torch_loads():
    """A typo costs one line at once, not the seconds torch takes to import."""
    import subprocess
    import sys

    commands = [["tstr", "/no/such.toml"], ["train", "/no/such.toml"],
                ["import-model", "/no/such.pth"], ["fid", "/no/such", "/no/other"],
                ["generate", "--latents", "/no/such.npy", "--out", "/tmp/x"],
                ["classifier", "import", "/no/such.pth"],
                ["study", "build", "--real", "/no/such", "--synthetic", "/no/other",
                 "--n-real", "2", "--n-synthetic", "2", "--out", "/tmp/x"]]
    code = ("import sys\nfrom cxrgan_desktop import cli\n"
            f"codes = [cli.main(argv) for argv in {commands!r}]\n"
            "print(codes, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == f"{[2] * len(commands)} False"
    assert result.stderr.count("no such file or folder") == len(commands)
