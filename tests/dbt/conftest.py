"""Fixtures for the dbt tests: a real DuckDB warehouse under tmp_path, raw rows we construct
(as the loader would write them), and real dbt runs through rtdp.transform."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from rtdp import warehouse
from rtdp.settings import Settings
from rtdp.transform import dbt_project_dir

SEEDS = dbt_project_dir() / "seeds"
MARTS = ("stg_events", "int_events_sessionized", "fact_sessions", "events_quarantine")


@dataclass(frozen=True)
class RawEvent:
    """One row of raw.raw_realtime_data_events, as the converter + loader write it."""

    event_id: str
    event_type: str
    event_timestamp: datetime
    message_id: str
    line_number: int
    anonymous_id: str | None = None
    user_id: str | None = None
    product_id: str | None = None
    quantity: int | None = None
    platform: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields outside the contract

    @property
    def raw_json(self) -> str:
        body = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("message_id", "line_number", "extra") and v is not None
        }
        body["event_timestamp"] = self.event_timestamp.isoformat() + "Z"
        return json.dumps({**body, **self.extra}, sort_keys=True)

    def row(self, *, loaded_at: datetime, filename: str, file_row: int) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_timestamp": self.event_timestamp,
            "event_date": self.event_timestamp.date(),
            "anonymous_id": self.anonymous_id,
            "user_id": self.user_id,
            "product_id": self.product_id,
            "quantity": self.quantity,
            "order_id": None,
            "page_url": None,
            "referrer": None,
            "platform": self.platform,
            "ip_address": None,
            "user_agent": None,
            "utm_source": self.utm_source,
            "utm_medium": self.utm_medium,
            "utm_campaign": self.utm_campaign,
            "raw_json": self.raw_json,
            "message_id": self.message_id,
            "line_number": self.line_number,
            "received_at": loaded_at,
            "metadata_filename": filename,
            "metadata_file_row_number": file_row,
            "loaded_at": loaded_at,
        }


@dataclass(frozen=True)
class RawRejected:
    """One row of raw.raw_realtime_data_quarantine."""

    raw_line: str
    reason: str
    message_id: str
    line_number: int
    seen_at: datetime
    stage: str = "convert"

    def row(self, *, loaded_at: datetime, filename: str, file_row: int) -> dict[str, Any]:
        return {
            "raw_line": self.raw_line,
            "reason": self.reason,
            "detail": None,
            "stage": self.stage,
            "message_id": self.message_id,
            "line_number": self.line_number,
            "seen_at": self.seen_at,
            "metadata_filename": filename,
            "metadata_file_row_number": file_row,
            "loaded_at": loaded_at,
        }


def insert_raw(
    settings: Settings, rows: list[RawEvent | RawRejected], *, loaded_at: datetime, filename: str
) -> None:
    """Load `rows` as one file would be loaded: same file name and load time, rows 1..n."""
    with warehouse.connect(settings.warehouse_path) as con:
        for file_row, item in enumerate(rows, start=1):
            row = item.row(loaded_at=loaded_at, filename=filename, file_row=file_row)
            table = warehouse.RAW_EVENTS if isinstance(item, RawEvent) else warehouse.RAW_QUARANTINE
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            con.execute(f"insert into {table} ({columns}) values ({marks})", list(row.values()))


def query(settings: Settings, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()


def seed_prices() -> dict[str, Decimal]:
    with (SEEDS / "products.csv").open() as f:
        return {r["product_id"]: Decimal(r["price"]) for r in csv.DictReader(f)}


def seed_countries() -> dict[str, str]:
    with (SEEDS / "users.csv").open() as f:
        return {r["user_id"]: r["country"] for r in csv.DictReader(f)}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")
