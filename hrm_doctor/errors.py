"""Errors a user can cause: the CLI prints them as one line and exits 2 (no traceback)."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (a missing run, a bad flag, a malformed file).

    The message must be one line naming the file (and line/key where known) and what is wrong,
    e.g. ``rules/my.yaml:12:5: unknown detector 'spik'``.
    """

    exit_code = 2


class RunNotFound(UserError, FileNotFoundError):
    """No run directory at that path (missing, or a directory without telemetry or meta.json).

    Also a `FileNotFoundError`, so library code can write ``except FileNotFoundError`` as for
    any missing file; the CLI still prints it as one line and exits 2.
    """


class NotARunDirectory(UserError, NotADirectoryError):
    """The path is a file, not a run directory."""
