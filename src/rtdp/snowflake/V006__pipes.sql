-- V006: auto-ingest pipes, one per lake prefix. S3 event notifications (Terraform) go to the
-- pipes' notification channel, printed by `rtdp snowflake init`. Columns are matched by name
-- (Parquet names are lower case); Snowpipe adds the file name, row number and scan time.
-- Snowpipe's load history is per pipe and keyed by file path and ETag, so a file is loaded
-- once. `if not exists`, never `or replace`: recreating a pipe drops its load history.
create pipe if not exists {{ database }}.RAW.RAW_REALTIME_DATA_EVENTS_PIPE
    auto_ingest = true
    comment = 'lake events/ to RAW_REALTIME_DATA_EVENTS'
as
copy into {{ database }}.RAW.RAW_REALTIME_DATA_EVENTS
from @{{ database }}.RAW.LAKE_STAGE/events/
file_format = (format_name = '{{ database }}.RAW.PARQUET_FORMAT')
match_by_column_name = case_insensitive
include_metadata = (
    metadata_filename = METADATA$FILENAME,
    metadata_file_row_number = METADATA$FILE_ROW_NUMBER,
    loaded_at = METADATA$START_SCAN_TIME
)
pattern = '.*[.]parquet';

create pipe if not exists {{ database }}.RAW.RAW_REALTIME_DATA_QUARANTINE_PIPE
    auto_ingest = true
    comment = 'lake quarantine/ to RAW_REALTIME_DATA_QUARANTINE'
as
copy into {{ database }}.RAW.RAW_REALTIME_DATA_QUARANTINE
from @{{ database }}.RAW.LAKE_STAGE/quarantine/
file_format = (format_name = '{{ database }}.RAW.PARQUET_FORMAT')
match_by_column_name = case_insensitive
include_metadata = (
    metadata_filename = METADATA$FILENAME,
    metadata_file_row_number = METADATA$FILE_ROW_NUMBER,
    loaded_at = METADATA$START_SCAN_TIME
)
pattern = '.*[.]parquet';
