"""Command-line options derived from their single sources.

Run settings come from :class:`~pinn_gmnm.config.RunConfig` (its fields declared with a
help line) and model options from the model registry's specs
(:data:`~pinn_gmnm.models.MODELS`): flags, types, help and the defaults shown in it are
read from there, so an option cannot exist in one place only. Nothing here imports
torch.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Optional

import typer

from pinn_gmnm.config import RunConfig
from pinn_gmnm.models import MODELS


def _plain_type(annotation: Any) -> type:
    """``int | None`` → int: the type the command line parses."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (arm,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return arm
    return annotation


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _with_default(help: str, default: str) -> str:
    """The help line with its default, bracketed as Click shows defaults (escaped, so
    that Rich's markup keeps the brackets)."""
    return f"{help} \\[default: {default}]" if default else help


def config_fields() -> list[dataclasses.Field]:
    """The RunConfig fields offered as command-line options (those with a help line)."""
    return [f for f in dataclasses.fields(RunConfig) if f.metadata.get("help")]


def _flag_names(name: str, flag: str | tuple[str, ...] | None, boolean: bool) -> list[str]:
    flags = [flag] if isinstance(flag, str) else list(flag or ["--" + name.replace("_", "-")])
    if boolean and "/" not in flags[0]:
        flags[0] = f"{flags[0]}/--no-{flags[0][2:]}"
    return flags


def config_parameter(f: dataclasses.Field, help: str | None = None) -> inspect.Parameter:
    """A keyword parameter (None when not given) for RunConfig field ``f``."""
    kind = _plain_type(typing.get_type_hints(RunConfig)[f.name])
    option = typer.Option(None, *_flag_names(f.name, f.metadata.get("flag"), kind is bool),
                          help=_with_default(help or f.metadata["help"], _shown(f.default)),
                          show_default=False)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                             annotation=Optional[kind])


def model_option_names() -> list[str]:
    """Every option of every registered model, in registration order."""
    names: dict[str, None] = {}
    for entry in MODELS:
        names.update(dict.fromkeys(o.name for o in entry.obj.options))
    return list(names)


def unmatched_options() -> list[tuple[str, str]]:
    """(model, option) for every option of the models without a size option (``fem``):
    ``compare`` cannot size them by ``--params``, so it offers their options."""
    return [(e.name, o.name) for e in MODELS if e.obj.size_option is None for o in e.obj.options]


def model_parameter(name: str) -> inspect.Parameter:
    """A keyword parameter for the model option ``name``; its help lists each model that
    takes it, with that model's meaning and default."""
    takers = [(e.name, o) for e in MODELS for o in e.obj.options if o.name == name]
    kind = takers[0][1].type
    parts = [f"{model.upper()}: {o.help}" for model, o in takers]
    defaults = [f"{_shown(o.default)} ({model})" if len(takers) > 1 else _shown(o.default)
                for model, o in takers if o.default is not None]
    option = typer.Option(None, *_flag_names(name, None, kind is bool),
                          help=_with_default("; ".join(parts), ", ".join(defaults)),
                          show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                             annotation=Optional[kind])


def with_parameters(fn: Callable[..., Any], extra: list[inspect.Parameter]) -> Callable[..., Any]:
    """``fn`` (taking ``**options``) with ``extra`` keyword parameters added to its
    signature, so that Typer offers them as options. Adding them again replaces them:
    ``python -m pinn_gmnm.cli.main`` (how torchrun launches the CLI) imports the CLI
    module a second time when ``compare`` asks it for a helper."""
    hints = typing.get_type_hints(fn, include_extras=True)
    added = {p.name for p in extra}  # already there when the CLI module is imported twice
    fixed = [p.replace(annotation=hints.get(p.name, p.annotation))
             for p in inspect.signature(fn).parameters.values()
             if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in added]
    params = [*fixed, *extra]
    fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params}
    return fn


def solve_parameters() -> list[inspect.Parameter]:
    """The run-setting and model options of ``gmnm-pde solve``."""
    return [*(config_parameter(f) for f in config_fields()),
            *(model_parameter(n) for n in model_option_names())]
