"""Apply the versioned Snowflake SQL beside this module, in order, idempotently.

``V<NNN>__<what>.sql`` files run in version order, every statement of every file on every run:
each is written to be re-runnable (``create ... if not exists``; nothing that holds data, load
history or a trust relationship is ever replaced), so a run brings any account up to date and a
second run changes nothing. A change to an existing object is a new version with ``alter``.

Placeholders ``{{ name }}`` are filled from :class:`Target`: identifiers are checked against
Snowflake's unquoted-identifier rules, literals are quoted, so no value can change a statement.

Connection (snowflake-connector-python, the ``snowflake`` extra) uses key-pair auth only, from
the same variables as the dbt profile: ``SNOWFLAKE_ACCOUNT``, ``SNOWFLAKE_USER``,
``SNOWFLAKE_PRIVATE_KEY_PATH`` (PEM, PKCS#8), ``SNOWFLAKE_PRIVATE_KEY_PASSPHRASE`` (optional),
``SNOWFLAKE_ROLE`` (a role that may create integrations and databases) and
``SNOWFLAKE_WAREHOUSE`` (optional: DDL needs none). ``SNOWFLAKE_HOST``/``SNOWFLAKE_PORT``/
``SNOWFLAKE_PROTOCOL`` are passed through when set (PrivateLink, or a local test server).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

from rtdp.exceptions import ConfigError, SnowflakeError

DEFAULT_DATABASE: Final = "REALTIME_DATA_PLATFORM_DB"
DEFAULT_INTEGRATION: Final = "RTDP_LAKE_S3"
PIPES: Final = ("RAW_REALTIME_DATA_EVENTS_PIPE", "RAW_REALTIME_DATA_QUARANTINE_PIPE")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,254}")
_ROLE_ARN: Final = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_STAGE_URL: Final = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([\w!*().=/-]+/)?")
_PLACEHOLDER: Final = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_FILE_NAME: Final = re.compile(r"V(\d{3})__(\w+)\.sql")


@dataclass(frozen=True)
class Target:
    """What the SQL is rendered for."""

    stage_url: str  # s3://bucket/prefix/ — the lake root
    storage_aws_role_arn: str  # the IAM role Snowflake assumes to read the lake
    database: str = DEFAULT_DATABASE
    integration: str = DEFAULT_INTEGRATION

    def __post_init__(self) -> None:
        for name in ("database", "integration"):
            if not _IDENTIFIER.fullmatch(getattr(self, name)):
                raise ConfigError(f"Snowflake {name} {getattr(self, name)!r} is not a plain"
                                  " identifier (letters, digits, _ and $)")
        if not _STAGE_URL.fullmatch(self.stage_url):
            raise ConfigError(f"stage URL {self.stage_url!r} is not s3://bucket/prefix/")
        if not _ROLE_ARN.fullmatch(self.storage_aws_role_arn):
            raise ConfigError(f"{self.storage_aws_role_arn!r} is not an IAM role ARN")

    @classmethod
    def from_lake(cls, lake_uri: str, storage_aws_role_arn: str,
                  database: str = DEFAULT_DATABASE) -> Target:
        parsed = urlparse(lake_uri)
        if parsed.scheme != "s3":
            raise ConfigError(f"Snowpipe loads from S3: RTDP_LAKE_URI {lake_uri!r} is not s3://")
        prefix = parsed.path.strip("/")
        url = f"s3://{parsed.netloc}/{prefix + '/' if prefix else ''}"
        return cls(stage_url=url, storage_aws_role_arn=storage_aws_role_arn, database=database)

    def values(self) -> dict[str, str]:
        return {
            "database": self.database.upper(),
            "integration": self.integration.upper(),
            "stage_url": _literal(self.stage_url),
            "storage_aws_role_arn": _literal(self.storage_aws_role_arn),
        }


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name
    statements: tuple[str, ...]


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def sql_files() -> list[tuple[int, str, str]]:
    """(version, file name, text) of every V*.sql file, in version order."""
    found = []
    for entry in resources.files("rtdp.snowflake").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise SnowflakeError(f"two Snowflake SQL files share a version: {sorted(versions)}")
    return sorted(found)


def render(text: str, values: dict[str, str], name: str = "<sql>") -> str:
    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise SnowflakeError(f"{name}: unknown placeholder {{{{ {key} }}}}")
        return values[key]

    return _PLACEHOLDER.sub(fill, text)


def split_statements(sql: str) -> list[str]:
    """Statements separated by ``;`` outside quotes and ``--`` comments; comments dropped."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch == "'":  # a literal ('' reads as two adjacent literals: same boundaries)
            j = i + 1
            while j < n and sql[j] != "'":
                j += 2 if sql[j] == "\\" else 1
            current.append(sql[i:j + 1])
            i = j + 1
            continue
        if ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def migrations(target: Target) -> list[Migration]:
    values = target.values()
    return [
        Migration(version, name, tuple(split_statements(render(text, values, name))))
        for version, name, text in sql_files()
    ]


def apply(cursor: Any, to_apply: list[Migration],
          on_statement: Callable[[Migration, str], None] | None = None) -> int:
    """Run every statement in order; stop at the first failure, naming file and statement."""
    count = 0
    for migration in to_apply:
        for statement in migration.statements:
            if on_statement:
                on_statement(migration, statement)
            try:
                cursor.execute(statement)
            except Exception as exc:  # the connector's errors, or the server's
                head = " ".join(statement.split())[:120]
                raise SnowflakeError(f"{migration.name}: {exc}\n  in: {head}...") from exc
            count += 1
    return count


def _rows(cursor: Any, sql: str) -> Iterator[dict[str, Any]]:
    cursor.execute(sql)
    names = [d[0].lower() for d in cursor.description]
    for row in cursor.fetchall():
        yield dict(zip(names, row, strict=True))


def pipe_channels(cursor: Any, database: str = DEFAULT_DATABASE) -> dict[str, str]:
    """Each pipe's notification channel (the SQS queue S3 event notifications must target)."""
    channels = {
        str(r["name"]).upper(): str(r["notification_channel"])
        for r in _rows(cursor, f"show pipes like 'RAW_REALTIME_DATA_%' in schema {database}.RAW")
    }
    missing = [p for p in PIPES if not channels.get(p)]
    if missing:
        raise SnowflakeError(f"no notification channel for {', '.join(missing)}")
    return {p: channels[p] for p in PIPES}


def integration_identity(cursor: Any, integration: str = DEFAULT_INTEGRATION) -> dict[str, str]:
    """The principal and external id the lake role's trust policy must name."""
    wanted = {"STORAGE_AWS_IAM_USER_ARN", "STORAGE_AWS_EXTERNAL_ID"}
    return {
        str(r["property"]): str(r["property_value"])
        for r in _rows(cursor, f"desc integration {integration}")
        if str(r["property"]) in wanted
    }


def connect_from_env() -> Any:
    """A snowflake-connector-python connection with key-pair auth, from ``SNOWFLAKE_*``."""
    try:
        import snowflake.connector
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:
        raise ConfigError(f"rtdp snowflake needs: pip install 'rtdp[snowflake]' ({exc})") from exc
    missing = [v for v in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_PATH")
               if not os.environ.get(v)]
    if missing:
        raise ConfigError(f"set {', '.join(missing)} (key-pair auth, as for dbt)")
    key_path = Path(os.environ["SNOWFLAKE_PRIVATE_KEY_PATH"])
    passphrase = os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE") or None
    try:
        key = serialization.load_pem_private_key(
            key_path.read_bytes(), password=passphrase.encode() if passphrase else None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the private key {key_path}: {exc}") from exc
    params: dict[str, Any] = {
        "account": os.environ["SNOWFLAKE_ACCOUNT"],
        "user": os.environ["SNOWFLAKE_USER"],
        "authenticator": "SNOWFLAKE_JWT",
        "private_key": key.private_bytes(serialization.Encoding.DER,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()),
        "application": "rtdp",
        "session_parameters": {"QUERY_TAG": "rtdp-snowflake-init"},
    }
    for name in ("role", "warehouse", "host", "protocol"):
        if os.environ.get(f"SNOWFLAKE_{name.upper()}"):
            params[name] = os.environ[f"SNOWFLAKE_{name.upper()}"]
    if os.environ.get("SNOWFLAKE_PORT"):
        params["port"] = int(os.environ["SNOWFLAKE_PORT"])
    try:
        return snowflake.connector.connect(**params)
    except snowflake.connector.errors.Error as exc:
        raise SnowflakeError(f"cannot connect to Snowflake account {params['account']}: "
                             f"{exc}") from exc
