"""The command-line dispatcher: every command registered, global options before or after it."""

from __future__ import annotations

import pytest

from kaesong_thermal.cli import COMMANDS, build_parser, main


def test_every_command_is_registered() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("argv", "verbose", "quiet"),
    [
        (["status"], 0, False),
        (["-v", "status"], 1, False),
        (["status", "-vv"], 2, False),
        (["-q", "status"], 0, True),
        (["status", "--quiet"], 0, True),
        (["-v", "status", "-v", "-v"], 2, False),  # given after the command, that count wins
    ],
)
def test_log_options_before_or_after_the_command(
    argv: list[str], verbose: int, quiet: bool
) -> None:
    args = build_parser().parse_args(argv)
    assert args.verbose == verbose and args.quiet is quiet


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: kaesong-thermal" in capsys.readouterr().err
