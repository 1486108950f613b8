"""Open the queue and the lake a :class:`~rtdp.settings.Settings` points at."""

from __future__ import annotations

from rtdp.lake import Lake, open_lake
from rtdp.queue import Queue, open_queue
from rtdp.settings import Settings


def queue_for(settings: Settings) -> Queue:
    return open_queue(
        settings.resolved_queue_url,
        max_message_bytes=settings.max_message_bytes,
        max_receive_count=settings.max_receive_count,
    )


def lake_for(settings: Settings) -> Lake:
    return open_lake(settings.resolved_lake_uri)
