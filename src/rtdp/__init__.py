"""rtdp: a real-time behavioral data platform.

producer → queue → converter → Parquet lake → warehouse loader → dbt, with the same code on one
machine (SQLite queue, local lake, DuckDB) and in the cloud (SQS, S3, Snowflake).
"""

__version__ = "0.1.0"
