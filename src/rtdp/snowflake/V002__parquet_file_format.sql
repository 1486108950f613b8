-- V002: how the lake's files are read. Every lake file has the same fixed schema
-- (src/rtdp/events.py): zstd Parquet, timestamps as microseconds without a zone (UTC).
-- use_logical_type: read timestamp and date logical types as such, not as integers.
-- `if not exists`: a change to a file format that pipes use is a new version with ALTER.
create file format if not exists {{ database }}.RAW.PARQUET_FORMAT
    type = parquet
    compression = auto
    use_logical_type = true
    comment = 'rtdp lake files';
