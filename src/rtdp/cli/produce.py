"""``rtdp produce``: realistic behavioral events, with real clients' dirt, into the queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from rtdp.cli._common import HomeOption, JsonOption, emit, live_progress_enabled, settings_for
from rtdp.exceptions import ConfigError


def _parse_start(value: str | None) -> datetime | None:
    """ISO-8601; no offset means UTC, as on the wire (spec §1)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--start-time {value!r} is not an ISO-8601 date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def produce(
    rate: Annotated[
        float,
        typer.Option("--rate", min=0.0,
                     help="Events per second, paced to the wall clock; 0 = as fast as possible."),
    ] = 0.0,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.0, help="Stop after this many seconds."),
    ] = None,
    events: Annotated[
        int | None, typer.Option("--events", min=0, help="Stop after this many lines.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Same seed and --start-time, same lines. Default: random."),
    ] = None,
    start_time: Annotated[
        str | None,
        typer.Option("--start-time",
                     help="Event time of the first events (ISO-8601). Default: now when paced; "
                          "as fast as possible, a backfill that ends about now."),
    ] = None,
    traffic_rate: Annotated[
        float | None,
        typer.Option("--traffic-rate", min=0.001,
                     help="As fast as possible only: simulated events per second of event "
                          "time (how busy the shop is). Default 1000."),
    ] = None,
    epoch_ratio: Annotated[
        float, typer.Option("--epoch-ratio", min=0.0, max=1.0,
                            help="Share of epoch-number timestamps (s, s.fff, ms).")
    ] = 0.3,
    case_ratio: Annotated[
        float, typer.Option("--case-ratio", min=0.0, max=1.0,
                            help="Share of upper/title-cased or space-padded event types.")
    ] = 0.1,
    duplicate_ratio: Annotated[
        float, typer.Option("--duplicate-ratio", min=0.0, max=1.0,
                            help="Share of events delivered twice (some re-serialised).")
    ] = 0.05,
    late_ratio: Annotated[
        float, typer.Option("--late-ratio", min=0.0, max=1.0,
                            help="Share of events delivered minutes to days late.")
    ] = 0.02,
    malformed_ratio: Annotated[
        float, typer.Option("--malformed-ratio", min=0.0, max=1.0,
                            help="Share of lines that are not valid events (every reason).")
    ] = 0.01,
    clean: Annotated[
        bool, typer.Option("--clean", help="Every dirty ratio (and orphan ids) at 0.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1,
                     help="Processes simulating traffic (same lines either way). "
                          "Default: 2 for big fast runs and --rate ≥ 20000, else 1."),
    ] = None,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Generate sessions of page views, product views, carts and checkouts into the queue.

    Without --events or --duration, runs until SIGINT/SIGTERM, then flushes and exits.
    Every line is counted in the ledger once the queue has accepted it.
    """
    # Imported here so that `rtdp --help` does not pay for the producer's tables.
    from rtdp.backends import queue_for
    from rtdp.ledger import Ledger
    from rtdp.producer import ProduceProgress, ProducerConfig
    from rtdp.producer import produce as run_producer
    from rtdp.progress import every, live_line
    from rtdp.signals import stop_on_signals

    settings = settings_for(home)
    config = ProducerConfig(
        seed=seed,
        start_time=_parse_start(start_time),
        rate=rate,
        duration_seconds=duration,
        events=events,
        traffic_rate=traffic_rate,
        epoch_ratio=epoch_ratio,
        case_ratio=case_ratio,
        duplicate_ratio=duplicate_ratio,
        late_ratio=late_ratio,
        malformed_ratio=malformed_ratio,
        max_message_bytes=settings.max_message_bytes,
    )
    if clean:
        config = config.clean()
    stop = stop_on_signals()
    queue = queue_for(settings)
    ledger = Ledger(settings.ledger_path)
    due = every(0.25)
    try:
        with live_line("produce", live_progress_enabled(json_)) as line:

            def progress(p: ProduceProgress) -> None:
                if due():
                    line.update(lines=p.lines, messages=p.messages, megabytes=p.bytes >> 20)

            summary = run_producer(queue, ledger, config, on_progress=progress, stop=stop,
                                   workers=workers)
    finally:
        ledger.close()
        queue.close()
    emit(summary.to_dict(), json_, "produce")


def register(app: typer.Typer) -> None:
    app.command("produce")(produce)
