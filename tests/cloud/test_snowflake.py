"""The Snowflake SQL (src/rtdp/snowflake/) and ``rtdp snowflake init``, with no account.

fakesnow's server runs what it can over the real connector: database, schemas, file format,
stage and the raw tables, twice (idempotence). It has no storage integrations and no pipes;
those statements are parsed with sqlglot's Snowflake dialect instead — a pipe by its COPY
statement, which must target a created table whose columns hold the metadata it includes.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from typing import Any

import duckdb
import pytest

from rtdp import warehouse
from rtdp.exceptions import ConfigError
from rtdp.snowflake.init import Migration, Target, apply, migrations, split_statements
from tests.cloud import servers
from tests.support import RTDP

sqlglot = pytest.importorskip("sqlglot", reason="sqlglot comes with fakesnow[server]")
snowflake_connector = pytest.importorskip("snowflake.connector")
exp = sqlglot.exp

ROLE_ARN = "arn:aws:iam::123456789012:role/rtdp-snowflake-lake"
LAKE = "s3://rtdp-lake-bucket/prod/lake"
_PIPE = re.compile(r"create pipe if not exists (\S+)\s+auto_ingest = true\s+comment = '[^']*'"
                   r"\s+as\s+(copy into .*)", re.IGNORECASE | re.DOTALL)
_NOT_IN_FAKESNOW = re.compile(r"create (storage integration|pipe)\b", re.IGNORECASE)


def _parse(statement: str) -> Any:
    """Parse strictly; a pipe is its header plus its COPY INTO, which is parsed."""
    pipe = _PIPE.fullmatch(statement)
    sql = pipe.group(2) if pipe else statement
    tree = sqlglot.parse_one(sql, read="snowflake", error_level=sqlglot.ErrorLevel.RAISE)
    assert not isinstance(tree, exp.Command), f"only tokenized, not parsed:\n{sql}"
    return tree


def _connect(server: servers.Server) -> Any:
    port = int(server.endpoint.rsplit(":", 1)[1])
    return snowflake_connector.connect(
        user="fake", password="snow", account="fakesnow", host="127.0.0.1", port=port,
        protocol="http", network_timeout=5,
        session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False})


def _database() -> str:
    return f"RTDP_TEST_{uuid.uuid4().hex[:8].upper()}"


def _columns(cursor: Any, database: str, table: str) -> list[tuple[str, str, str]]:
    cursor.execute(
        f"select column_name, data_type, is_nullable from {database}.information_schema.columns"
        f" where table_schema = 'RAW' and table_name = '{table}' order by ordinal_position")
    return [(str(n).lower(), str(t), str(y)) for n, t, y in cursor.fetchall()]


def _runnable(plan: list[Migration]) -> tuple[list[Migration], list[str]]:
    runnable = [Migration(m.version, m.name,
                          tuple(s for s in m.statements if not _NOT_IN_FAKESNOW.match(s)))
                for m in plan]
    skipped = [s for m in plan for s in m.statements if _NOT_IN_FAKESNOW.match(s)]
    return runnable, skipped


def test_sql_applies_on_fakesnow_twice_and_the_rest_parses(
    fakesnow_server: servers.Server,
) -> None:
    database = _database()
    plan = migrations(Target.from_lake(LAKE, ROLE_ARN, database))
    assert [m.version for m in plan] == sorted(m.version for m in plan)
    runnable, skipped = _runnable(plan)
    assert len(skipped) == 3  # the integration and two pipes

    con = _connect(fakesnow_server)
    try:
        cursor = con.cursor()
        assert apply(cursor, runnable) == sum(len(m.statements) for m in runnable)
        cursor.execute(f"insert into {database}.RAW.RAW_REALTIME_DATA_QUARANTINE"
                       " (raw_line, reason, stage, message_id, line_number, seen_at,"
                       " metadata_filename, metadata_file_row_number, loaded_at) values"
                       " ('x', 'malformed_json', 'convert', 'm', 1, current_timestamp,"
                       " 'quarantine/a.parquet', 1, current_timestamp)")
        apply(cursor, runnable)  # again: nothing fails, nothing is replaced
        cursor.execute(f"select count(*) from {database}.RAW.RAW_REALTIME_DATA_QUARANTINE")
        assert cursor.fetchone() == (1,)
        cursor.execute(f"show stages in schema {database}.RAW")
        stages = {row[1]: row[4] for row in cursor.fetchall()}
        assert stages == {"LAKE_STAGE": "s3://rtdp-lake-bucket/prod/lake/"}
        tables = {t: _columns(cursor, database, t) for t in (
            "RAW_REALTIME_DATA_EVENTS", "RAW_REALTIME_DATA_QUARANTINE")}
    finally:
        con.close()

    for statement in skipped:
        tree = _parse(statement)
        if isinstance(tree, exp.Copy):  # a pipe: loads a created table, its metadata columns
            table = tree.this.name.upper()
            assert table in tables
            sql = tree.sql("snowflake").upper()
            for column in ("METADATA_FILENAME", "METADATA_FILE_ROW_NUMBER", "LOADED_AT"):
                assert column.lower() in [c for c, _, _ in tables[table]]
                assert f"{column} = METADATA$" in sql
            assert "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE" in sql
        else:
            assert tree.args.get("kind") == "STORAGE INTEGRATION"
            assert ROLE_ARN in tree.sql("snowflake")


_SNOWFLAKE_TYPES = {"VARCHAR": {"TEXT"}, "TIMESTAMP": {"TIMESTAMP_NTZ"}, "DATE": {"DATE"},
                    "BIGINT": {"NUMBER"}, "INTEGER": {"NUMBER"}}


def test_raw_tables_match_the_local_warehouse_column_for_column(
    fakesnow_server: servers.Server,
) -> None:
    database = _database()
    runnable, _ = _runnable(migrations(Target.from_lake(LAKE, ROLE_ARN, database)))
    local = duckdb.connect(":memory:")
    local.execute(warehouse.DDL)
    con = _connect(fakesnow_server)
    try:
        cursor = con.cursor()
        apply(cursor, runnable)
        for table in (warehouse.RAW_EVENTS, warehouse.RAW_QUARANTINE):
            name = table.split(".")[1]
            expected = local.execute(
                "select column_name, data_type, is_nullable from information_schema.columns"
                " where table_schema = 'raw' and table_name = ? order by ordinal_position",
                [name]).fetchall()
            actual = _columns(cursor, database, name.upper())
            assert [c for c, _, _ in actual] == [c for c, _, _ in expected]
            for (column, duck_type, duck_null), (_, sf_type, sf_null) in zip(
                    expected, actual, strict=True):
                # loaded_at is an instant in Snowflake (METADATA$START_SCAN_TIME is LTZ);
                # fakesnow reports LTZ as TIMESTAMP_TZ
                allowed = ({"TIMESTAMP_LTZ", "TIMESTAMP_TZ"} if column == "loaded_at"
                           else _SNOWFLAKE_TYPES[duck_type])
                assert sf_type in allowed, (name, column, sf_type)
                assert sf_null == duck_null, (name, column)
    finally:
        con.close()
        local.close()


def test_dry_run_prints_every_statement_rendered_and_parseable() -> None:
    env = {**os.environ, "RTDP_LAKE_URI": LAKE, "SNOWFLAKE_STORAGE_AWS_ROLE_ARN": ROLE_ARN}
    proc = subprocess.run([RTDP, "snowflake", "init", "--dry-run"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sql = proc.stdout[:proc.stdout.index("snowflake init (dry run)")]
    statements = split_statements(sql)
    assert len(statements) == 10
    assert "{{" not in sql
    for statement in statements:
        _parse(statement)
    assert "storage_allowed_locations = ('s3://rtdp-lake-bucket/prod/lake/')" in sql


@pytest.mark.parametrize("bad", [
    {"database": "X; drop database Y"},
    {"storage_aws_role_arn": "arn:aws:iam::123456789012:role/x' or '1'='1"},
    {"stage_url": "s3://bucket/it's/"},
])
def test_values_cannot_change_a_statement(bad: dict[str, str]) -> None:
    values = {"stage_url": "s3://rtdp-lake-bucket/p/", "storage_aws_role_arn": ROLE_ARN} | bad
    with pytest.raises(ConfigError):
        Target(**values)


def test_init_connects_by_key_pair_and_stops_loudly_at_what_the_server_refuses(
    fakesnow_server: servers.Server, tmp_path: Any,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa_key.p8"
    pem.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    database = _database()
    port = fakesnow_server.endpoint.rsplit(":", 1)[1]
    env = {**os.environ, "RTDP_LAKE_URI": LAKE, "SNOWFLAKE_STORAGE_AWS_ROLE_ARN": ROLE_ARN,
           "SNOWFLAKE_DATABASE": database, "SNOWFLAKE_ACCOUNT": "fakesnow",
           "SNOWFLAKE_USER": "rtdp_deployer", "SNOWFLAKE_PRIVATE_KEY_PATH": str(pem),
           "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "passphrase", "SNOWFLAKE_HOST": "127.0.0.1",
           "SNOWFLAKE_PORT": port, "SNOWFLAKE_PROTOCOL": "http"}
    proc = subprocess.run([RTDP, "snowflake", "init", "--json"], capture_output=True, text=True,
                          env=env, timeout=180)
    # fakesnow has no storage integrations: init must stop there, exit non-zero, and say where
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "V003__storage_integration.sql" in proc.stderr
    con = _connect(fakesnow_server)
    try:
        cursor = con.cursor()
        cursor.execute(f"show file formats in schema {database}.RAW")
        assert [row[1] for row in cursor.fetchall()] == ["PARQUET_FORMAT"]  # V001, V002 ran
    finally:
        con.close()
