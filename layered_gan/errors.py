"""A user's mistake, as opposed to our bug.

Library code raises these for what a user gave wrong (a path, an option, a config value, a file of the
wrong kind); the command line (`layered_gan/cli.py`) shows their message as one line on stderr and exits
with code 2. Every other exception is a bug of ours and keeps its traceback. Each class also derives from
the built-in exception it refines, so `except ValueError` keeps catching a `BadValue`.
"""

import contextlib


class UserError(Exception):
    """Something the user gave is wrong; the message says what and what is valid."""


class BadValue(UserError, ValueError):
    """An option, config value or file content that is not valid."""


class MissingPath(UserError, FileNotFoundError):
    """A path that does not exist or cannot be read."""

    def __str__(self):  # FileNotFoundError(errno, msg, path) formats itself; a plain message stays plain
        return self.args[0] if len(self.args) == 1 else super().__str__()


class PathExists(UserError, FileExistsError):
    """An output that would overwrite something the user has."""

    def __str__(self):
        return self.args[0] if len(self.args) == 1 else super().__str__()


class UnknownKey(UserError, KeyError):
    """A config key or name that does not exist."""

    def __str__(self):  # KeyError quotes its message
        return str(self.args[0]) if self.args else ""


@contextlib.contextmanager
def about(option):
    """Name the option a UserError raised inside concerns: `with about("--ckpt"): G = load_stylegan2(ckpt)`."""
    try:
        yield
    except UserError as exc:
        if str(exc).startswith(option):  # the message names it already
            raise
        raise type(exc)(f"{option}: {exc}") from None
