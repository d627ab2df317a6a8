"""Entry point: assembles the command groups and turns MlcrewError into one line + exit code."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup, TyperOption

from mlcrew.cli import (
    data,
    doctor,
    experiments,
    export,
    features,
    label,
    models,
    monitor,
    people,
    pipeline,
    project,
    registry,
    report,
    score,
    serve,
    store,
)
from mlcrew.cli.common import err_console
from mlcrew.errors import MlcrewError

# Every exit code mlcrew uses, for scripts and CI (README "Exit codes" says the same).
EXIT_CODES = """\b
Exit codes:
  0   done (`run`: the model passed every gate)
  1   failed: bad data, a failed check, not found, not reproduced
  2   bad usage, or a missing or invalid spec/project (says where)
  3   a gate said no: `run` (registered, not promoted), `promote`
  70  internal error: a bug (rerun with --debug, please report it)
  130 interrupted (Ctrl-C)"""


def _plain_flags(params: list[Any]) -> list[Any]:
    """A flag takes no value: show none beside it in --help (Typer prints `<bool>`)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


app = typer.Typer(
    name="mlcrew",
    help="mlcrew: one spec, one store, one pipeline from raw data to a monitored model.",
    epilog=EXIT_CODES,
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group in (project, pipeline, registry, serve, score, export, people, report, doctor):
    for command in group.app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = _Command
    app.registered_commands.extend(group.app.registered_commands)
# Command groups with sub-commands: `mlcrew models [history]`, `mlcrew store verify`,
# `mlcrew user add|list|remove`, `mlcrew token create|list|revoke`, `mlcrew label ...`,
# `mlcrew experiments list|show|compare`, `mlcrew data list|show|diff|profile|query`,
# `mlcrew monitor [labels|run|watch|alerts|report]`.
for sub in (
    monitor.app,
    models.app,
    store.app,
    people.user_app,
    people.token_app,
    label.app,
    experiments.app,
    features.app,
    data.app,
):
    sub.info.cls = _Group
    for command in sub.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = _Command
    app.add_typer(sub)

_debug = {"on": bool(os.environ.get("MLCREW_DEBUG"))}


def _print_version(value: bool) -> None:
    if value:
        from mlcrew import __version__

        typer.echo(f"mlcrew {__version__}")
        raise typer.Exit()


def _set_debug(value: bool) -> None:
    if value:
        _debug["on"] = True


@app.callback()
def _root(
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Show full tracebacks on errors.",
        is_eager=True,
        callback=_set_debug,
    ),
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """Options that apply to every command."""


def main(try_replay: bool = True) -> None:
    if try_replay:  # `python -m mlcrew.cli.main run` replays a no-op too (see pipeline/noop.py)
        from mlcrew.pipeline.noop import replay

        replayed = replay(sys.argv[1:])
        if replayed is not None:
            sys.exit(replayed)
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except MlcrewError as exc:
        if _debug["on"]:
            raise
        err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # Usage errors: Typer may raise its own bundled copy of click's exception classes, so
        # recognise them by shape rather than by class.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            if type(exc).__name__ != "NoArgsIsHelpError":  # help was printed already
                show()
            sys.exit(code)
        if _debug["on"]:
            raise
        err_console.print(
            f"[red]internal error:[/] {exc.__class__.__name__}: {escape(str(exc))} (run with "
            "--debug for the "
            "traceback, and please report it)",
            soft_wrap=True,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
