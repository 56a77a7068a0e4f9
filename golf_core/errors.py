"""The one base of the errors a user can fix (a bad spec, config, flag, file or data dir).

`run_cli` prints a UserError as one line naming what is wrong, exit 2; any other exception,
a plain ValueError included, is a bug and keeps its traceback. A UserError is a ValueError, so
code that catches ValueError still catches it.
"""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """An error in what the user gave (one line naming it); never a bug in golf."""
