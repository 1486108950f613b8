"""``rtdp snowflake init``: database, schemas, file format, integration, stage, raw tables and
Snowpipe pipes, from the versioned SQL in ``rtdp/snowflake/``."""

from __future__ import annotations

from typing import Annotated

import typer

from rtdp.cli._common import HomeOption, JsonOption, emit, settings_for, stderr
from rtdp.exceptions import ConfigError
from rtdp.snowflake.init import (
    DEFAULT_DATABASE,
    Migration,
    Target,
    apply,
    connect_from_env,
    integration_identity,
    migrations,
    pipe_channels,
)

snowflake_app = typer.Typer(help="Snowflake: what Snowpipe loads the lake into.",
                            no_args_is_help=True)


@snowflake_app.command("init")
def init(
    storage_aws_role_arn: Annotated[str, typer.Option(
        "--storage-aws-role-arn", envvar="SNOWFLAKE_STORAGE_AWS_ROLE_ARN",
        help="IAM role Snowflake assumes to read the lake (Terraform output).")] = "",
    database: Annotated[str, typer.Option(
        "--database", envvar="SNOWFLAKE_DATABASE", help="Database to create.")
    ] = DEFAULT_DATABASE,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the SQL that would run; connect to nothing.")] = False,
    home: HomeOption = None,
    json_: JsonOption = False,
) -> None:
    """Apply the versioned Snowflake SQL (idempotent) and print the pipes' notification channel.

    The stage is the lake: RTDP_LAKE_URI must be s3://bucket/prefix. Connection by key pair:
    SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PRIVATE_KEY_PATH, SNOWFLAKE_ROLE.
    """
    settings = settings_for(home)
    if not settings.lake_uri:
        raise ConfigError("set RTDP_LAKE_URI to the lake (s3://bucket/prefix): it is the stage")
    if not storage_aws_role_arn:
        raise ConfigError("set SNOWFLAKE_STORAGE_AWS_ROLE_ARN (or --storage-aws-role-arn)")
    target = Target.from_lake(settings.lake_uri, storage_aws_role_arn, database)
    plan = migrations(target)
    statements = sum(len(m.statements) for m in plan)
    if dry_run:
        for migration in plan:
            print(f"-- {migration.name}")
            for statement in migration.statements:
                print(f"{statement};\n")
        emit({"dry_run": True, "files": [m.name for m in plan], "statements": statements},
             json_, "snowflake init (dry run)")
        return

    def show(migration: Migration, statement: str) -> None:
        if not json_:
            stderr.print(f"[dim]{migration.name}[/dim] {' '.join(statement.split())[:90]}")

    connection = connect_from_env()
    try:
        cursor = connection.cursor()
        applied = apply(cursor, plan, on_statement=show)
        channels = pipe_channels(cursor, target.database)
        identity = integration_identity(cursor, target.integration)
    finally:
        connection.close()
    emit({
        "database": target.database,
        "stage_url": target.stage_url,
        "files": [m.name for m in plan],
        "statements": applied,
        # S3 event notifications of the lake bucket go here (one queue for the account)
        "notification_channel": sorted(set(channels.values()))[0],
        "pipes": channels,
        # the lake role's trust policy must allow this principal with this external id
        "storage_aws_iam_user_arn": identity.get("STORAGE_AWS_IAM_USER_ARN"),
        "storage_aws_external_id": identity.get("STORAGE_AWS_EXTERNAL_ID"),
    }, json_, "snowflake init")


def register(app: typer.Typer) -> None:
    app.add_typer(snowflake_app, name="snowflake")
