-- Grain: one row per event (= stg_events) with its session (spec §5).
--
-- why incremental by session key: a key's sessions depend on all of that key's events and
-- on nothing else. A run recomputes every session key that any raw row loaded since the
-- watermark could have changed, from the key's whole history in stg_events, and replaces
-- all rows of those keys (replace_keys by session_key). Which keys? Those of EVERY raw row
-- of every event id that got a new raw row — not only the new rows' keys: when a
-- conflicting duplicate with another key wins (spec §3), the event moves from the old
-- winner's key to the new one, and the old key must lose it. The old winner's row is still
-- in raw with its key, so the set is data-only and complete. A touched key left with no
-- event at all still gets its old rows deleted, through a marker row (null event_id).
-- Late events, bridging events and new first events all fall out of recomputing the key
-- whole: session boundaries, numbers and ids are recomputed, never patched.
-- depends_on: {{ source('rtdp_raw', 'raw_realtime_data_events') }}
{{
    config(
        incremental_strategy='replace_keys',
        unique_key='session_key',
        meta={'replace_keys_marker_column': 'event_id'},
        post_hook=[
            "{{ rtdp.record_watermark('int_events_sessionized', 'select max(_max_loaded_at) from ' ~ this) }}",
        ],
    )
}}

with

events as (

    select * from {{ ref('stg_events') }}

),

{% if is_incremental() %}

raw_events as (

    select * from {{ source('rtdp_raw', 'raw_realtime_data_events') }}

),

touched_event_ids as (

    select distinct event_id
    from raw_events
    where loaded_at > {{ rtdp.incremental_since('select max(_max_loaded_at) from ' ~ this) }}

),

touched_keys as (

    select distinct {{ rtdp.session_key('anonymous_id', 'user_id') }} as session_key
    from raw_events
    where event_id in (select event_id from touched_event_ids)

),

key_events as (

    select events.*
    from events
    where events.session_key in (select session_key from touched_keys)

),

{% else %}

touched_keys as (

    select distinct session_key from events

),

key_events as (

    select * from events

),

{% endif %}

gaps as (

    select
        key_events.*,
        lag(key_events.event_timestamp) over (
            partition by key_events.session_key
            order by key_events.event_timestamp, {{ rtdp.byte_order('key_events.event_id') }}
        ) as previous_event_timestamp

    from key_events

),

session_starts as (

    select
        gaps.*,
        -- why: exact elapsed microseconds, compared strictly: a gap of exactly the setting
        -- continues the session, one microsecond more starts a new one (spec §5); calendar
        -- boundaries (minutes, midnight) play no part
        case
            when gaps.previous_event_timestamp is null then 1
            when {{ rtdp.microseconds_between('gaps.previous_event_timestamp', 'gaps.event_timestamp') }}
                > {{ rtdp.session_gap_microseconds() }} then 1
            else 0
        end as is_session_start

    from gaps

),

numbered as (

    select
        session_starts.*,
        cast(sum(session_starts.is_session_start) over (
            partition by session_starts.session_key
            order by session_starts.event_timestamp, {{ rtdp.byte_order('session_starts.event_id') }}
            rows between unbounded preceding and current row
        ) as bigint) as session_number

    from session_starts

),

first_events as (

    select
        numbered.*,
        first_value(numbered.event_id) over (
            partition by numbered.session_key, numbered.session_number
            order by numbered.event_timestamp, {{ rtdp.byte_order('numbered.event_id') }}
            rows between unbounded preceding and unbounded following
        ) as first_event_id

    from numbered

),

sessionized as (

    select
        first_events.*,
        -- why: content-addressed, not positional: stable across runs unless the session's
        -- first event itself changes (spec §5)
        {{ dbt.hash("first_events.session_key || '|' || first_events.first_event_id") }} as session_id

    from first_events

),

final as (

    select
        touched_keys.session_key,
        sessionized.session_id,
        sessionized.session_number,
        sessionized.event_id,
        sessionized.event_type,
        sessionized.event_timestamp,
        sessionized.event_date,
        sessionized.anonymous_id,
        sessionized.user_id,
        sessionized.product_id,
        sessionized.quantity,
        sessionized.order_id,
        sessionized.page_url,
        sessionized.referrer,
        sessionized.platform,
        sessionized.ip_address,
        sessionized.user_agent,
        sessionized.utm_source,
        sessionized.utm_medium,
        sessionized.utm_campaign,
        sessionized.event_json,
        sessionized.message_id,
        sessionized.line_number,
        sessionized.loaded_at,
        sessionized._max_loaded_at

    from touched_keys
    left join sessionized
        on touched_keys.session_key = sessionized.session_key

)

select * from final
