"""How ``gmnm-pde`` tells the user what went wrong, one line each.

:class:`OneLineGroup` is the application's command group: a command line that cannot be
parsed (an unknown option, a value of the wrong type, a missing argument) ends with

    error: Invalid value for '--points': … (got '1e12'; write it as 1000000000000) (see gmnm-pde solve --help)

and exit code 2, instead of Click's usage text and framed box; and warnings raised while
a command runs (a problem without conditions, a reference with missing values, a stale
lock taken over) are printed as ``warning: …`` lines.
"""

from __future__ import annotations

import decimal
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer carries its own copy of Click since 0.2x
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover  (older typer uses Click itself)
    from click.exceptions import ClickException, UsageError


class OneLineGroup(TyperGroup):
    """The ``gmnm-pde`` group: one-line parse errors, one-line warnings."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except UsageError as exc:
            if not standalone_mode:
                raise
            _usage_error(exc, argv, prog_name or self.name or "gmnm-pde")
            code = exc.exit_code
        except ClickException as exc:
            if not standalone_mode:
                raise
            exc.show()
            code = exc.exit_code
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("Aborted!", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return super().invoke(ctx)


def _usage_error(exc: UsageError, argv: list[str], prog: str) -> None:
    if type(exc).__name__ == "NoArgsIsHelpError":  # plain `gmnm-pde`: the help (rich prints it itself)
        if exc.format_message():
            typer.echo(exc.format_message(), err=True)
        return
    message = exc.format_message()
    raw = _given(argv, getattr(getattr(exc, "param", None), "opts", []))
    if raw is not None:
        message += f" (got '{raw}'{_whole_number_hint(raw)})"
    typer.secho(f"error: {message} (see {_command_path(exc, argv, prog)} --help)", err=True,
                fg=typer.colors.RED)


def _command_path(exc: UsageError, argv: list[str], prog: str) -> str:
    """``gmnm-pde solve``: the command whose help explains the error (Click leaves the
    context out of some errors, e.g. an option missing its value)."""
    if exc.ctx is not None:
        return exc.ctx.command_path
    command = next((a for a in argv if not a.startswith("-")), None)
    return f"{prog} {command}" if command is not None else prog


def _given(argv: list[str], opts: Sequence[str]) -> str | None:
    """The text given on the command line for an option with names ``opts``."""
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1:]
    return None


def _whole_number_hint(text: str) -> str:
    """``; write it as 1000000000000`` for a whole number in scientific notation."""
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        return ""
    if not value.is_finite() or value != value.to_integral_value() or text.strip().lstrip("+-").isdigit():
        return ""
    return f"; write it as {int(value)}"


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    typer.secho(f"warning: {message}", err=True, fg=typer.colors.YELLOW)
