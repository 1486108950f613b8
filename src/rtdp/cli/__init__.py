"""``rtdp``: the one entry point (spec §9). One module per command."""

from __future__ import annotations

import sys

import typer

from rtdp.exceptions import RtdpError

app = typer.Typer(
    name="rtdp",
    help="Real-time behavioral data platform: produce, queue, convert, load, transform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# In the order `rtdp --help` lists them.
_COMMANDS = ("demo", "produce", "ingest", "convert", "load", "transform", "status", "dlq", "bench",
             "snowflake")


def _register() -> None:
    # Imported here so that `rtdp --help` stays cheap and each command owns its module.
    import importlib

    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"rtdp.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"rtdp.cli.{name}":  # a command whose extra is not installed
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    try:
        app()
    except RtdpError as exc:
        print(f"rtdp: error: {exc}", file=sys.stderr)
        sys.exit(2)
