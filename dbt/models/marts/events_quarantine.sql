-- Grain: one row per rejected physical line, i.e. per (message_id, line_number) — spec §2:
-- nothing is silently dropped; every rejected line with its raw text, reason, stage and when
-- it was first seen.
--
-- why this shape: a line redelivered by the queue is one line (dedup by its identity, data
-- only: earliest seen_at first). A line that was rejected once and accepted on a later
-- delivery (timestamp_out_of_range is relative to processing time) is an event, not a
-- rejected line: it is left out so `lines ingested = kept + duplicates + rejected` holds.
-- why incremental by line: a line's row is a function of all raw rows of that line in both
-- raw tables; touched lines are recomputed whole and replaced (replace_keys), and a line that
-- became accepted reaches the delete through a marker row (null reason).
{{
    config(
        incremental_strategy='replace_keys',
        unique_key='quarantine_id',
        meta={'replace_keys_marker_column': 'reason'},
    )
}}

with

raw_quarantine as (

    select * from {{ source('rtdp_raw', 'raw_realtime_data_quarantine') }}

),

raw_events as (

    select * from {{ source('rtdp_raw', 'raw_realtime_data_events') }}

),

{% if is_incremental() %}

touched_lines as (

    select message_id, line_number
    from raw_quarantine
    where loaded_at > {{ rtdp.incremental_since('select max(_max_loaded_at) from ' ~ this) }}

    union

    -- why: an accepted delivery of an already quarantined line removes it from here
    select raw_events.message_id, raw_events.line_number
    from raw_events
    inner join raw_quarantine
        on raw_events.message_id = raw_quarantine.message_id
        and raw_events.line_number = raw_quarantine.line_number
    where raw_events.loaded_at > {{ rtdp.incremental_since('select max(_max_loaded_at) from ' ~ this) }}

),

{% else %}

touched_lines as (

    select distinct message_id, line_number
    from raw_quarantine

),

{% endif %}

candidate_rows as (

    select raw_quarantine.*
    from raw_quarantine
    inner join touched_lines
        on raw_quarantine.message_id = touched_lines.message_id
        and raw_quarantine.line_number = touched_lines.line_number

),

accepted_lines as (

    select distinct raw_events.message_id, raw_events.line_number
    from raw_events
    inner join touched_lines
        on raw_events.message_id = touched_lines.message_id
        and raw_events.line_number = touched_lines.line_number

),

ranked as (

    select
        candidate_rows.*,
        max(candidate_rows.loaded_at) over (
            partition by candidate_rows.message_id, candidate_rows.line_number
        ) as max_loaded_at,
        row_number() over (
            partition by candidate_rows.message_id, candidate_rows.line_number
            order by
                candidate_rows.seen_at,
                candidate_rows.reason,
                {{ rtdp.byte_order('candidate_rows.raw_line') }},
                candidate_rows.stage,
                candidate_rows.detail,
                candidate_rows.metadata_filename,
                candidate_rows.metadata_file_row_number,
                candidate_rows.loaded_at
        ) as rank_in_line

    from candidate_rows
    left join accepted_lines
        on candidate_rows.message_id = accepted_lines.message_id
        and candidate_rows.line_number = accepted_lines.line_number
    where accepted_lines.message_id is null

),

final as (

    select
        {{ dbt.hash("touched_lines.message_id || '|' || cast(touched_lines.line_number as " ~ dbt.type_string() ~ ")") }}
            as quarantine_id,
        ranked.raw_line,
        ranked.reason,
        ranked.detail,
        ranked.stage,
        ranked.seen_at,
        touched_lines.message_id,
        touched_lines.line_number,
        ranked.metadata_filename,
        ranked.metadata_file_row_number,
        ranked.loaded_at,
        ranked.max_loaded_at as _max_loaded_at

    from touched_lines
    left join ranked
        on touched_lines.message_id = ranked.message_id
        and touched_lines.line_number = ranked.line_number
        and ranked.rank_in_line = 1

    {% if not is_incremental() %}
    -- why: marker rows (touched line, nothing to keep) only matter to an incremental delete
    where ranked.reason is not null
    {% endif %}

)

select * from final
