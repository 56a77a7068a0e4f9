"""golf_core's own commands (`python -m golf_core ...`); `golf` adds the orchestrator's.

Each command module exposes `register(subparsers)`, adding parsers whose `func(args) -> int`
runs the command. Errors a user can fix are raised as golf_core.errors.UserError subclasses
(ConfigError, SpecError, ShardError, DataDirError, ArtifactError, ...) and printed as one line by
`run_cli`, exit code 2; any other exception, a plain ValueError included, is a bug and keeps its
traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from golf_core.errors import UserError

CORE_COMMAND_MODULES = (
    "golf_core.data.cli",
    "golf_core.train.cli",
    "golf_core.eval.cli",  # eval
    "golf_core.eval.cli_mix",  # mix, audit
    "golf_core.export.cli",  # export
)


def build_parser(prog: str, modules: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="parameter-golf experiments")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


MAX_ERROR_LINE = 600  # a user value in an error is echoed at most ~200 characters (issue 20)


def shown(value, limit: int = 200) -> str:
    """repr(value), cut to `limit` characters with what was cut said: an error that names a bad
    value never floods the console with it (a 1 MB string in a spec, a binary line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _bounded(message: str) -> str:
    """Each line of an error at most MAX_ERROR_LINE characters (a value nobody cut before)."""
    return "\n".join(x if len(x) <= MAX_ERROR_LINE else f"{x[:MAX_ERROR_LINE]}... ({len(x):,} characters)"
                     for x in str(message).split("\n"))


def run_cli(prog: str, modules: tuple[str, ...], argv: list[str] | None = None) -> int:
    parser = build_parser(prog, modules)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # `golf schema | head`: the reader left; end quietly. Point stdout at devnull so the
        # interpreter's own flush at exit does not raise again (Python docs, "SIGPIPE" note).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (UserError, FileNotFoundError, ConnectionError) as e:
        # One line naming what is wrong (input errors; an unreachable tracking server or
        # cluster is a ConnectionError, e.g. orchestrator's TrackingUnavailable); no traceback.
        # Not every ValueError: one golf raises by mistake is a bug, its traceback the report.
        print(f"{prog}: error: {_bounded(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_cli("python -m golf_core", CORE_COMMAND_MODULES, argv)
