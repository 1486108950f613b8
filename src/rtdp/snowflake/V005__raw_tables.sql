-- V005: the raw tables, column for column the local warehouse's (src/rtdp/warehouse.py):
-- the lake schema, then Snowpipe's metadata (file name, 1-based row number, load time).
-- Never replaced: they hold the data. New columns come as new versions with ALTER TABLE.
create table if not exists {{ database }}.RAW.RAW_REALTIME_DATA_EVENTS (
    event_id varchar not null,
    event_type varchar not null,
    event_timestamp timestamp_ntz(6) not null,
    event_date date not null,
    anonymous_id varchar,
    user_id varchar,
    product_id varchar,
    quantity number(19, 0),
    order_id varchar,
    page_url varchar,
    referrer varchar,
    platform varchar,
    ip_address varchar,
    user_agent varchar,
    utm_source varchar,
    utm_medium varchar,
    utm_campaign varchar,
    raw_json varchar not null,
    message_id varchar not null,
    line_number number(10, 0) not null,
    received_at timestamp_ntz(6) not null,
    metadata_filename varchar not null,
    metadata_file_row_number number(19, 0) not null,
    -- METADATA$START_SCAN_TIME is an instant (timestamp_ltz); dbt's incremental watermark
    loaded_at timestamp_ltz(6) not null
)
comment = 'One row per valid lake row, loaded by RAW_REALTIME_DATA_EVENTS_PIPE';

create table if not exists {{ database }}.RAW.RAW_REALTIME_DATA_QUARANTINE (
    raw_line varchar not null,
    reason varchar not null,
    detail varchar,
    stage varchar not null,
    message_id varchar not null,
    line_number number(10, 0) not null,
    seen_at timestamp_ntz(6) not null,
    metadata_filename varchar not null,
    metadata_file_row_number number(19, 0) not null,
    loaded_at timestamp_ltz(6) not null
)
comment = 'One row per rejected line (raw text, first reason), loaded by RAW_REALTIME_DATA_QUARANTINE_PIPE';
