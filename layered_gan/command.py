"""What every command of the toolkit shares: its error handling and the common options.

A user's mistake (a click usage error, or a `UserError` raised by the library) is shown as one line on
stderr, naming the command, with exit code 2 and no traceback; any other exception is a bug of ours and
keeps its traceback. Use `@command()` / `@group()` instead of click's decorators.
"""

import functools
import sys

import click
import torch

from .devices import check_device
from .errors import UserError


class UserErrorAtCommand(click.ClickException):
    """A library `UserError`, raised while `ctx`'s command ran."""

    exit_code = 2

    def __init__(self, message, ctx):
        super().__init__(message)
        self.ctx = ctx


def run_standalone(main, prog_name):
    """Call `main` (a click main with standalone_mode=False) as a shell does, then exit with its status."""
    try:
        main()
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo(f"{prog_name}: aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # a group called without a command: its help, as --help
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.ClickException as exc:
        where = exc.ctx.command_path if getattr(exc, "ctx", None) else prog_name
        hint = f" (see {where} --help)" if isinstance(exc, click.UsageError) else ""
        click.echo(f"{where}: error: {' '.join(exc.format_message().split())}{hint}", err=True)
        sys.exit(2)
    except UserError as exc:  # raised outside a ToolkitCommand's invoke (e.g. in a group's callback)
        click.echo(f"{prog_name}: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    sys.exit(0)


class _Standalone:
    """Mixin: a standalone run (a shell, or click's test runner) goes through `run_standalone`."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        parent_main = functools.partial(super().main, args, prog_name, complete_var, standalone_mode=False, **extra)
        if not standalone_mode:
            return parent_main()
        return run_standalone(parent_main, prog_name or self.name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise UserErrorAtCommand(str(exc), ctx) from None


class ToolkitCommand(_Standalone, click.Command):
    pass


class ToolkitGroup(_Standalone, click.Group):
    command_class = ToolkitCommand


ToolkitGroup.group_class = ToolkitGroup


def command(name=None, **kwargs):
    """click.command with the toolkit's error handling."""
    return click.command(name, cls=ToolkitCommand, **kwargs)


def group(name=None, **kwargs):
    """click.group with the toolkit's error handling; its subcommands get it too."""
    return click.group(name, cls=ToolkitGroup, **kwargs)


def _checked_device(ctx, param, value):
    """--device's callback: the device as a torch device string, cuda only where a GPU is visible."""
    try:
        return check_device(value)
    except UserError as exc:
        raise UserErrorAtCommand(str(exc), ctx) from None


device_option = click.option(
    "--device", default=lambda: "cuda" if torch.cuda.is_available() else "cpu", callback=_checked_device,
    show_default="cuda if a GPU is visible, else cpu",
    help="Torch device (cpu, cuda, cuda:1, ...); under torchrun, cuda gives each process its own GPU.")
