"""Settings: one frozen dataclass, from flags first, then ``RTDP_*`` variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rtdp.exceptions import ConfigError

DEFAULT_HOME: Final = ".rtdp"
SQS_MAX_MESSAGE_BYTES: Final = 1024 * 1024
# Every line the converter would not reject as oversize (≤ 64 KiB) must fit in one message,
# so a line that cannot travel is always an oversize line.
MIN_MESSAGE_BYTES: Final = 64 * 1024 + 1024


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_number(name: str, default: float, *, minimum: float, integer: bool) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a process of rtdp needs to find its backends and size its batches."""

    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME))
    # Backends are chosen by URL/URI; empty means the embedded default under ``home``.
    queue_url: str = ""
    lake_uri: str = ""
    # Largest queue message body in bytes (SQS: 1 MiB, 256 KiB on older accounts).
    max_message_bytes: int = 256 * 1024
    # Converter: flush a micro-batch at this many body bytes or this age, whichever first.
    flush_bytes: int = 16 * 1024 * 1024
    flush_seconds: float = 5.0
    visibility_timeout_seconds: float = 60.0
    max_receive_count: int = 5
    # Sessions (spec §5): inactivity gap that starts a new session.
    session_gap_seconds: int = 1800

    @classmethod
    def from_env(cls, home: Path | str | None = None) -> Settings:
        settings = cls(
            home=Path(home) if home else Path(_env("RTDP_HOME", DEFAULT_HOME)),
            queue_url=_env("RTDP_QUEUE_URL", ""),
            lake_uri=_env("RTDP_LAKE_URI", ""),
            max_message_bytes=_env_number(
                "RTDP_MAX_MESSAGE_BYTES", 256 * 1024, minimum=MIN_MESSAGE_BYTES, integer=True
            ),
            flush_bytes=_env_number(
                "RTDP_FLUSH_BYTES", 16 * 1024 * 1024, minimum=1, integer=True
            ),
            flush_seconds=_env_number("RTDP_FLUSH_SECONDS", 5.0, minimum=0, integer=False),
            visibility_timeout_seconds=_env_number(
                "RTDP_VISIBILITY_TIMEOUT_SECONDS", 60.0, minimum=1, integer=False
            ),
            max_receive_count=_env_number(
                "RTDP_MAX_RECEIVE_COUNT", 5, minimum=1, integer=True
            ),
            session_gap_seconds=_env_number(
                "RTDP_SESSION_GAP_SECONDS", 1800, minimum=1, integer=True
            ),
        )
        if settings.max_message_bytes > SQS_MAX_MESSAGE_BYTES:
            raise ConfigError(
                f"RTDP_MAX_MESSAGE_BYTES={settings.max_message_bytes} is above SQS's 1 MiB limit"
            )
        return settings

    @property
    def resolved_queue_url(self) -> str:
        return self.queue_url or f"sqlite://{(self.home / 'queue.sqlite').resolve()}"

    @property
    def resolved_lake_uri(self) -> str:
        return self.lake_uri or f"file://{(self.home / 'lake').resolve()}"

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def ledger_path(self) -> Path:
        return self.home / "ledger.sqlite"
