-- V001: the database and its two schemas.
-- RAW is written only by Snowpipe (one row per lake row, never updated); ANALYTICS only by dbt.
create database if not exists {{ database }}
    comment = 'rtdp: real-time behavioral data platform';

create schema if not exists {{ database }}.RAW
    comment = 'Rows loaded from the lake by Snowpipe';

create schema if not exists {{ database }}.ANALYTICS
    comment = 'dbt models: stg_events, int_events_sessionized, fact_sessions, events_quarantine';
