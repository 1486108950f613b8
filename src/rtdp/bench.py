"""``rtdp bench``: rtdp measured beside what a user would otherwise pick, in the same run.

Absolute times on a shared 2-core machine are noisy; ratios between methods measured on the
same events, one after the other, are not. Every sub-benchmark generates its events with the
producer from a fixed seed. Results go to ``bench/results/latest.json`` (flat keys, see
``RESULT_KEYS``) and ``latest.md``.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

from rtdp import warehouse
from rtdp.backends import lake_for, queue_for
from rtdp.convert import BatchConverter, write_batch
from rtdp.ingest import Ingestor, read_lines
from rtdp.lake import FileNamer
from rtdp.ledger import Ledger
from rtdp.load import Loader
from rtdp.producer import ProducerConfig, generate_lines, produce
from rtdp.queue import Message
from rtdp.settings import Settings
from rtdp.transform import run_transform
from rtdp.workers import Worker, rtdp_executable

KINDS: Final = ("convert", "produce", "freshness", "dbt")
RESULT_KEYS: Final = (
    "convert_eps", "duckdb_copy_eps", "pyarrow_eps", "seed_pandas_eps", "convert_peak_rss_mib",
    "produce_eps", "freshness_p50_s", "freshness_p99_s", "dbt_full_s", "dbt_incremental_s",
)
_SEED_BATCH: Final = 100  # the original Lambda converted up to 100 records per invocation
_SEED_SAMPLE_MAX: Final = 100_000  # the original method is slow: measure it on a sample
_BARE_COLUMNS: Final = {
    "event_id": "VARCHAR", "event_type": "VARCHAR", "event_timestamp": "JSON",
    "anonymous_id": "VARCHAR", "user_id": "VARCHAR", "product_id": "VARCHAR",
    "quantity": "BIGINT", "order_id": "VARCHAR", "page_url": "VARCHAR", "referrer": "VARCHAR",
    "platform": "VARCHAR", "ip_address": "VARCHAR", "user_agent": "VARCHAR",
    "utm_source": "VARCHAR", "utm_medium": "VARCHAR", "utm_campaign": "VARCHAR",
}


@dataclass(frozen=True)
class BenchConfig:
    events: int = 1_000_000
    seed: int = 42
    freshness_rates: tuple[int, ...] = (1_000, 10_000, 50_000)
    freshness_seconds: float = 30.0
    dbt_sizes: tuple[int, ...] = (1_000_000, 10_000_000)
    incremental_fraction: float = 0.01

    def quick(self) -> BenchConfig:
        """Tiny sizes: every code path, no meaningful numbers (the smoke test in make test)."""
        return replace(self, events=min(self.events, 3_000), freshness_rates=(500,),
                       freshness_seconds=3.0, dbt_sizes=(3_000,))


@dataclass
class BenchResult:
    values: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


Progress = Callable[[str], None]


@contextmanager
def _fresh_home(parent: Path, name: str) -> Iterator[Settings]:
    home = parent / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    yield Settings(home=home)


def _write_events(path: Path, n: int, seed: int, *, clean: bool = True,
                  start: datetime | None = None, late_ratio: float | None = None) -> int:
    """``n`` producer events as NDJSON; returns the line count."""
    config = ProducerConfig(events=n, seed=seed, start_time=start)
    config = config.clean() if clean else config
    if late_ratio is not None:
        config = replace(config, late_ratio=late_ratio)
    lines = 0
    with open(path, "wb") as fh:
        for chunk in generate_lines(config):
            fh.write(b"\n".join(chunk) + b"\n")
            lines += len(chunk)
    return lines


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


# -- convert ------------------------------------------------------------------------------


def _duckdb_copy(source: Path, target: Path) -> None:
    con = duckdb.connect()
    try:
        columns = ", ".join(f"{k}: '{v}'" for k, v in _BARE_COLUMNS.items())
        con.execute(
            f"copy (select * from read_json('{source}', format = 'newline_delimited',"
            f" columns = {{{columns}}})) to '{target}' (format parquet, compression zstd)"
        )
    finally:
        con.close()


def _pyarrow(source: Path, target: Path) -> None:
    pq.write_table(pj.read_json(source), target, compression="zstd")


def _seed_pandas(lines: list[bytes]) -> int:
    """The replaced system's converter: per batch of 100 records, json.loads each, a pandas
    DataFrame, pa.Table.from_pandas, Parquet into a buffer (then one S3 object)."""
    import pandas as pd

    written = 0
    for start in range(0, len(lines), _SEED_BATCH):
        records = [json.loads(line) for line in lines[start : start + _SEED_BATCH]]
        frame = pd.DataFrame(records)
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame), buffer)
        written += len(records)
    return written


def _converter_subprocess(settings: Settings) -> tuple[dict[str, Any], float]:
    """``rtdp convert --once`` in a child of a fresh Python, so its peak RSS is its own."""
    probe = (
        "import json, resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr[-2000:],"
        " 'rss_kib': rss}))\n"
    )
    env = {**os.environ, "RTDP_HOME": str(settings.home)}
    proc = subprocess.run([sys.executable, "-c", probe, rtdp_executable(), "convert", "--once",
                           "--json"],
                          capture_output=True, text=True, env=env, check=True)
    report = json.loads(proc.stdout)
    if report["rc"] != 0:
        raise RuntimeError(f"rtdp convert failed: {report['err']}")
    summary = json.loads(report["out"].strip().splitlines()[-1])
    return summary, report["rss_kib"] / 1024


def bench_convert(cfg: BenchConfig, work: Path, result: BenchResult, say: Progress) -> None:
    source = work / "convert-events.ndjson"
    say(f"convert: generating {cfg.events:,} clean events")
    n = _write_events(source, cfg.events, cfg.seed)
    with _fresh_home(work, "convert") as settings:
        queue = queue_for(settings)
        ledger = Ledger(settings.ledger_path)
        Ingestor(queue, lake_for(settings), ledger,
                 max_message_bytes=settings.max_message_bytes).ingest([source])
        queue.close()
        ledger.close()
        say("convert: rtdp convert --once")
        summary, rss = _converter_subprocess(settings)
    rtdp_s = float(summary["seconds"])
    say("convert: DuckDB bare COPY")
    duck_s, _ = _timed(lambda: _duckdb_copy(source, work / "duckdb.parquet"))
    say("convert: pyarrow read_json + write_table")
    arrow_s, _ = _timed(lambda: _pyarrow(source, work / "pyarrow.parquet"))
    sample = [line for _, line in read_lines(source)][: min(n, _SEED_SAMPLE_MAX)]
    say(f"convert: the original pandas method on {len(sample):,} events")
    seed_s, _ = _timed(lambda: _seed_pandas(sample))
    v = result.values
    v["convert_eps"] = round(summary["lines"] / rtdp_s)
    v["duckdb_copy_eps"] = round(n / duck_s)
    v["pyarrow_eps"] = round(n / arrow_s)
    v["seed_pandas_eps"] = round(len(sample) / seed_s)
    v["convert_peak_rss_mib"] = round(rss, 1)
    result.details["convert"] = {
        "events": n,
        "ratio_to_duckdb_copy": round(v["convert_eps"] / v["duckdb_copy_eps"], 3),
        "ratio_to_pyarrow": round(v["convert_eps"] / v["pyarrow_eps"], 3),
        "ratio_to_seed_pandas": round(v["convert_eps"] / v["seed_pandas_eps"], 1),
        "converter_files": summary["files"],
    }


# -- produce ------------------------------------------------------------------------------


def bench_produce(cfg: BenchConfig, work: Path, result: BenchResult, say: Progress) -> None:
    with _fresh_home(work, "produce") as settings:
        say(f"produce: {cfg.events:,} events into the local queue")
        queue = queue_for(settings)
        ledger = Ledger(settings.ledger_path)
        try:
            summary = produce(queue, ledger, ProducerConfig(events=cfg.events, seed=cfg.seed))
        finally:
            queue.close()
            ledger.close()
    result.values["produce_eps"] = round(summary.events_per_second)
    result.details["produce"] = {"events": summary.events, "messages": summary.messages,
                                 "seconds": round(summary.seconds, 3)}


# -- freshness ----------------------------------------------------------------------------


def _freshness_at(rate: int, seconds: float, work: Path, seed: int) -> dict[str, Any]:
    with _fresh_home(work, f"freshness-{rate}") as settings:
        env = {**os.environ, "RTDP_HOME": str(settings.home), "RTDP_FLUSH_SECONDS": "0.5"}
        workers = [
            Worker("convert", ["convert", "--follow"], env),
            Worker("load", ["load", "--follow", "--poll-seconds", "0.2"], env),
        ]
        try:
            time.sleep(2.0)  # workers started, as in production
            Worker("produce", ["produce", "--rate", str(rate), "--duration", str(seconds),
                               "--seed", str(seed), "--clean"], env).finish(terminate=False)
            deadline = time.monotonic() + 120
            expected = _ledger_lines(settings)
            while time.monotonic() < deadline and _raw_rows(settings) < expected:
                time.sleep(0.5)
            for worker in workers:
                worker.finish(terminate=True)
        finally:
            for worker in workers:
                worker.kill()
        with warehouse.connect(settings.warehouse_path) as con:
            p50, p99, worst, rows = warehouse.one(
                con,
                "select quantile_cont(s, 0.5), quantile_cont(s, 0.99), max(s), count(*) from ("
                f" select epoch(loaded_at - event_timestamp) as s from {warehouse.RAW_EVENTS})",
            )
    return {"rate": rate, "rows": rows, "expected": expected,
            "achieved_eps": round(expected / seconds),
            "p50_s": _round(p50), "p99_s": _round(p99), "max_s": _round(worst)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _ledger_lines(settings: Settings) -> int:
    ledger = Ledger(settings.ledger_path)
    try:
        return ledger.total_lines()
    finally:
        ledger.close()


def _raw_rows(settings: Settings) -> int:
    with warehouse.connect(settings.warehouse_path) as con:
        (rows,) = warehouse.one(con, f"select count(*) from {warehouse.RAW_EVENTS}")
    return int(rows)


def bench_freshness(cfg: BenchConfig, work: Path, result: BenchResult, say: Progress) -> None:
    runs = []
    for rate in cfg.freshness_rates:
        say(f"freshness: {rate:,} events/s for {cfg.freshness_seconds:g} s")
        runs.append(_freshness_at(rate, cfg.freshness_seconds, work, cfg.seed))
    result.details["freshness"] = runs
    # The headline figure is at 10k events/s (the target's rate), else the closest rate run.
    headline = min(runs, key=lambda r: abs(r["rate"] - 10_000))
    result.values["freshness_p50_s"] = headline["p50_s"]
    result.values["freshness_p99_s"] = headline["p99_s"]


# -- dbt ----------------------------------------------------------------------------------


def _land(settings: Settings, source: Path, converter: BatchConverter) -> None:
    """NDJSON → lake → raw tables, straight through the converter and loader (no queue)."""
    lake = lake_for(settings)
    namer = FileNamer()
    run_id = uuid.uuid4().hex[:8]  # (message_id, line_number) must name each line once
    batch: list[Message] = []
    size = 0
    number = 0

    def flush() -> None:
        nonlocal batch, size
        if batch:
            write_batch(lake, converter.convert(batch), namer)
        batch, size = [], 0

    lines: list[bytes] = []
    for _, line in read_lines(source):
        lines.append(line)
        if len(lines) == 2_000:
            number += 1
            batch.append(Message(f"bench-{run_id}-{number}", "", b"\n".join(lines), 1, 0.0))
            size += sum(map(len, lines))
            lines = []
            if size >= 32 * 1024 * 1024:
                flush()
    if lines:
        batch.append(Message(f"bench-{run_id}-{number + 1}", "", b"\n".join(lines), 1, 0.0))
    flush()
    Loader(lake, settings).load_once()


def bench_dbt(cfg: BenchConfig, work: Path, result: BenchResult, say: Progress) -> None:
    runs = []
    converter = BatchConverter()
    try:
        for size in cfg.dbt_sizes:
            with _fresh_home(work, f"dbt-{size}") as settings:
                start = datetime.now(UTC) - timedelta(days=3)
                source = work / f"dbt-{size}.ndjson"
                say(f"dbt: generating and landing {size:,} events")
                _write_events(source, size, cfg.seed, clean=False, start=start)
                _land(settings, source, converter)
                say(f"dbt: full refresh on {size:,} events")
                full_s, _ = _timed(
                    partial(run_transform, settings, full_refresh=True, unit_tests=False))
                extra = max(1, int(size * cfg.incremental_fraction))
                # New traffic continues after the first batch, with late events among it.
                _write_events(source, extra, cfg.seed + 1, clean=False,
                              start=start + timedelta(days=1), late_ratio=0.05)
                _land(settings, source, converter)
                say(f"dbt: incremental run adding {extra:,} events")
                incremental_s, _ = _timed(partial(run_transform, settings, unit_tests=False))
                source.unlink()
            runs.append({"events": size, "full_s": round(full_s, 2),
                         "incremental_s": round(incremental_s, 2),
                         "ratio": round(incremental_s / full_s, 3)})
    finally:
        converter.close()
    result.details["dbt"] = runs
    largest = runs[-1]
    result.values["dbt_full_s"] = largest["full_s"]
    result.values["dbt_incremental_s"] = largest["incremental_s"]


_BENCHES: Final = {
    "convert": bench_convert,
    "produce": bench_produce,
    "freshness": bench_freshness,
    "dbt": bench_dbt,
}


def run(kinds: list[str], cfg: BenchConfig, say: Progress,
        work_dir: Path | None = None) -> BenchResult:
    result = BenchResult()
    result.details["config"] = {"events": cfg.events, "seed": cfg.seed,
                                "cpus": os.cpu_count(), "python": sys.version.split()[0],
                                "duckdb": duckdb.__version__, "pyarrow": pa.__version__}
    result.details["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="rtdp-bench-", dir=work_dir) as tmp:
        for kind in kinds:
            _BENCHES[kind](cfg, Path(tmp), result, say)
    result.details["rusage_children_maxrss_mib"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


def merge_previous(result: BenchResult, out_dir: Path, kinds: list[str]) -> BenchResult:
    """Keep the latest figures of the sub-benchmarks not run this time (each says when it
    ran), so ``rtdp bench convert`` does not erase the dbt figures of an earlier run."""
    previous_path = out_dir / "latest.json"
    if not previous_path.is_file():
        return result
    previous = json.loads(previous_path.read_text())
    details = previous.get("details", {})
    merged = BenchResult(notes=list(result.notes))
    for kind in KINDS:
        source_values, source_details = (
            (result.values, result.details) if kind in kinds else (previous, details)
        )
        for key in _KEYS_OF[kind]:
            if key in source_values:
                merged.values[key] = source_values[key]
        if kind in source_details:
            merged.details[kind] = source_details[kind]
        ran_at = (result.details.get("started_at") if kind in kinds
                  else details.get("ran_at", {}).get(kind, details.get("started_at")))
        if kind in merged.details:
            merged.details.setdefault("ran_at", {})[kind] = ran_at
    for key in ("config", "started_at", "rusage_children_maxrss_mib"):
        if key in result.details:
            merged.details[key] = result.details[key]
    return merged


_KEYS_OF: Final = {
    "convert": ("convert_eps", "duckdb_copy_eps", "pyarrow_eps", "seed_pandas_eps",
                "convert_peak_rss_mib"),
    "produce": ("produce_eps",),
    "freshness": ("freshness_p50_s", "freshness_p99_s"),
    "dbt": ("dbt_full_s", "dbt_incremental_s"),
}


def write_results(result: BenchResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "latest.json"
    json_path.write_text(json.dumps({**result.values, "details": result.details},
                                    indent=2, sort_keys=True) + "\n")
    md_path = out_dir / "latest.md"
    md_path.write_text(markdown(result))
    return json_path, md_path


def markdown(result: BenchResult) -> str:
    v, d = result.values, result.details
    rows = ["| measure | value |", "|---|---|"]
    for key in RESULT_KEYS:
        if key in v:
            rows.append(f"| `{key}` | {v[key]:,} |" if isinstance(v[key], int)
                        else f"| `{key}` | {v[key]} |")
    out = [f"Measured {d.get('started_at', '')} on {d['config']['cpus']} CPUs "
           f"(DuckDB {d['config']['duckdb']}, pyarrow {d['config']['pyarrow']}).", "",
           *rows, ""]
    if d.get("ran_at"):
        out += ["Each sub-benchmark's latest run: " + ", ".join(
            f"{kind} {when}" for kind, when in sorted(d["ran_at"].items())) + ".", ""]
    if "convert" in d:
        c = d["convert"]
        out += [f"Converter on {c['events']:,} events: {c['ratio_to_duckdb_copy']}× DuckDB's "
                f"bare COPY, {c['ratio_to_pyarrow']}× pyarrow, {c['ratio_to_seed_pandas']}× "
                "the original pandas method.", ""]
    if "freshness" in d:
        out += ["| asked events/s | sent events/s | rows | p50 s | p99 s | max s |",
                "|---|---|---|---|---|---|"]
        out += [f"| {r['rate']:,} | {r.get('achieved_eps', '')} | {r['rows']:,} | {r['p50_s']} "
                f"| {r['p99_s']} | {r['max_s']} |" for r in d["freshness"]]
        out.append("")
    if "dbt" in d:
        out += ["| events | full refresh s | incremental (+1%) s | ratio |", "|---|---|---|---|"]
        out += [f"| {r['events']:,} | {r['full_s']} | {r['incremental_s']} | {r['ratio']} |"
                for r in d["dbt"]]
        out.append("")
    return "\n".join(out)
