-- V004: the lake as an external stage. Paths under it are the lake's own
-- (events/event_date=YYYY-MM-DD/..., quarantine/seen_date=YYYY-MM-DD/...), so
-- METADATA$FILENAME is the same relative path the local loader records.
-- `if not exists`: pipes hold a reference to the stage; recreating it would orphan them.
create stage if not exists {{ database }}.RAW.LAKE_STAGE
    url = {{ stage_url }}
    storage_integration = {{ integration }}
    file_format = (format_name = '{{ database }}.RAW.PARQUET_FORMAT')
    comment = 'rtdp lake';
