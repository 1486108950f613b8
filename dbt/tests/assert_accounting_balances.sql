-- Spec §2: lines ingested = valid events kept + duplicates removed + rejected lines.
--
-- Every side is computed independently: lines ingested and duplicates removed straight from
-- the raw tables (a physical line is a (message_id, line_number); duplicates removed = for
-- each event_id, its distinct lines minus the one kept), kept and rejected from the models.
-- Returns one row, with the figures, when the books do not balance.
-- Only meaningful when the models reflect all of raw (after a run over everything loaded).

with

raw_events as (

    select * from {{ source('rtdp_raw', 'raw_realtime_data_events') }}

),

raw_quarantine as (

    select * from {{ source('rtdp_raw', 'raw_realtime_data_quarantine') }}

),

stg_events as (

    select * from {{ ref('stg_events') }}

),

events_quarantine as (

    select * from {{ ref('events_quarantine') }}

),

all_lines as (

    select message_id, line_number from raw_events
    union
    select message_id, line_number from raw_quarantine

),

lines_per_event as (

    select event_id, count(*) as line_count
    from (select distinct event_id, message_id, line_number from raw_events) as event_lines
    group by event_id

),

figures as (

    select
        (select count(*) from all_lines) as lines_ingested,
        (select count(*) from stg_events) as events_kept,
        (select coalesce(sum(line_count - 1), 0) from lines_per_event) as duplicates_removed,
        (select count(*) from events_quarantine) as lines_rejected,
        (select coalesce(sum(duplicate_line_count), 0) from stg_events) as duplicates_in_stg

),

final as (

    select *
    from figures
    where lines_ingested != events_kept + duplicates_removed + lines_rejected
        or duplicates_removed != duplicates_in_stg

)

select * from final
