"""``--help`` explains every option and shows its default; ``models info`` reads like a summary."""

from __future__ import annotations

import argparse
import json

import pytest

from liveaug.cli import COMMANDS, build_parser, main


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _all_parsers():
    for name, p in _subparsers(build_parser()):
        yield name, p
        for sub, q in _subparsers(p):
            yield f"{name} {sub}", q


def test_every_option_and_subcommand_is_explained():
    seen = set()
    for name, p in _all_parsers():
        seen.add(name)
        assert p.description, f"liveaug {name} has no description"
        for action in p._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"liveaug {name} {'/'.join(action.option_strings)} has no help"
    assert {"models list", "models info", "models check", "models eval"} <= seen
    assert set(COMMANDS) <= seen


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "random seed of the culture (default: 0)" in out
    assert "(default: 512 512)" in out  # a pair shown as typed
    assert "(default: False)" not in out and "(default: None)" not in out
    with pytest.raises(SystemExit):
        main(["models", "eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: speed)" in out


def test_train_help_starts_with_what_a_microscopist_sets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    first_screen = "\n".join(out.splitlines()[:30])
    for option in ("--out", "--threads", "--init"):
        assert option in first_screen, first_screen
    for stage in ("finetune", "polish", "extend", "dna", "widen"):
        assert f"--{stage}-steps" not in first_screen
    assert "--finetune-steps" not in out and "finetune, polish" in " ".join(out.split())
    # the stage options still work
    args = build_parser().parse_args(["train", "--finetune-steps", "0", "--widen-lr", "1e-4"])
    assert args.finetune_steps == 0 and args.widen_lr == 1e-4


def test_models_info_is_a_readable_summary_and_json_on_request(capsys):
    from liveaug.model_zoo import find_models

    if not find_models():
        pytest.skip("no shipped model")
    name = find_models()[0].name
    assert main(["models", "info", name]) == 0
    out = capsys.readouterr().out
    assert "_r_full" not in out and "{" not in out
    assert "virtual DAPI" in out and "upsampled to the frame" in out and "shifted" in out
    assert main(["models", "info", name, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["roles"]["dapi"] and "dapi_r_full" in doc["accuracy"]["in_distribution"]
