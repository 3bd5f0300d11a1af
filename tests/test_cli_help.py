"""The CLI explains itself: every option of every command has help, with its default once and never
"(default: None)"."""

from __future__ import annotations

import argparse

from services.gateway.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "motpipe"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {child}")


def test_every_option_of_every_command_has_help_with_its_default_once():
    found = list(_parsers(build_parser(None)))
    assert {"motpipe synth", "motpipe detect", "motpipe track", "motpipe render", "motpipe sweep",
            "motpipe train motrv2", "motpipe train dfine"} <= {name for name, _ in found}  # fmt: skip
    for name, parser in found:
        for action in parser._actions:
            if action.option_strings and action.option_strings[0] != "-h":
                assert action.help, f"{name} {action.option_strings[0]} has no help"
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and action.help:
                shown = formatter._expand_help(action)
                appended = shown[len(action.help) :] if shown.startswith(action.help) else ""
                assert "default: None" not in shown, (name, shown)
                assert not ("default" in action.help and "default" in appended), (name, shown)  # not doubled
    track = dict(found)["motpipe track"].format_help()
    for knob in ("lost_track_buffer", "minimum_consecutive_frames", "miss_tolerance", "area_threshold"):
        assert f"--option {knob}=V" in track, knob
