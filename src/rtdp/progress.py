"""Live progress on a terminal: one line of counts and rates, redrawn in place."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text


class _Line:
    def __init__(self, live: Live | None, title: str) -> None:
        self._live = live
        self._title = title
        self._started = time.monotonic()

    @property
    def enabled(self) -> bool:
        return self._live is not None

    def update(self, **values: Any) -> None:
        if self._live is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-9)
        parts = [f"[bold]{self._title}[/bold] {elapsed:6.1f}s"]
        for key, value in values.items():
            parts.append(f"{key.replace('_', ' ')}: {value:,}" if isinstance(value, int)
                         else f"{key.replace('_', ' ')}: {value}")
        rate_of = values.get("lines", values.get("events"))
        if isinstance(rate_of, int):
            parts.append(f"{rate_of / elapsed:,.0f}/s")
        self._live.update(Text.from_markup("  ".join(parts)))


@contextmanager
def live_line(title: str, enabled: bool) -> Iterator[_Line]:
    """Yield an object whose ``update(**counts)`` redraws the line (a no-op when disabled)."""
    if not enabled:
        yield _Line(None, title)
        return
    with Live(Text(title), console=Console(stderr=True), refresh_per_second=4,
              transient=False) as live:
        yield _Line(live, title)


def every(seconds: float) -> Callable[[], bool]:
    """A throttle: the returned function is true at most once per ``seconds``."""
    last = [0.0]

    def due() -> bool:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            return True
        return False

    return due
