-- Grain: one row per session (spec §6), session_id unique.
--
-- why incremental by session key, with the watermark in analytics.rtdp_watermarks: §6 fixes
-- this table's columns, so the newest raw loaded_at it reflects is recorded by the post-hook
-- (same transaction as the insert) as the newest one int_events_sessionized reflected when
-- this model read it. A run recomputes, from int_events_sessionized, every session key that
-- a raw row loaded since then could have changed — found exactly as in
-- int_events_sessionized (all keys ever carried by a touched event id) — and replaces all
-- sessions of those keys (replace_keys by session_key). Sessions that merged, split, or
-- changed id because a new first event arrived disappear with their key's old rows; a key
-- with no session left is deleted through a marker row (null session_id).
-- depends_on: {{ source('rtdp_raw', 'raw_realtime_data_events') }}
-- depends_on: {{ source('rtdp_state', 'rtdp_watermarks') }}
{{
    config(
        incremental_strategy='replace_keys',
        unique_key='session_key',
        meta={'replace_keys_marker_column': 'session_id'},
        post_hook=[
            "{{ rtdp.record_watermark('fact_sessions', 'select max(_max_loaded_at) from ' ~ ref('int_events_sessionized')) }}",
        ],
    )
}}

with

events as (

    select * from {{ ref('int_events_sessionized') }}

),

products as (

    select * from {{ ref('products') }}

),

users as (

    select * from {{ ref('users') }}

),

{% if is_incremental() %}

raw_events as (

    select * from {{ source('rtdp_raw', 'raw_realtime_data_events') }}

),

watermarks as (

    select * from {{ source('rtdp_state', 'rtdp_watermarks') }}

),

touched_event_ids as (

    select distinct event_id
    from raw_events
    where loaded_at > {{ rtdp.incremental_since(
        "select max(max_loaded_at) from watermarks where model_name = 'fact_sessions'") }}

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

positioned as (

    select
        key_events.*,
        row_number() over (
            partition by key_events.session_id
            order by key_events.event_timestamp, {{ rtdp.byte_order('key_events.event_id') }}
        ) as event_position,
        -- why: spec §6 — unknown product: price 0; a missing quantity already became 1 in
        -- stg_events, coalesce again for safety
        case
            when key_events.event_type = 'checkout'
                then coalesce(key_events.quantity, 1) * coalesce(products.price, 0)
            else 0
        end as line_revenue

    from key_events
    left join products
        on key_events.product_id = products.product_id

),

-- why positions instead of first_value/last_value ... ignore nulls: the syntax differs
-- between engines; positions are plain SQL and make "in event order" explicit
picked_positions as (

    select
        session_id,
        max(case when user_id is not null then event_position end) as last_user_position,
        min(case when utm_source is not null then event_position end) as first_utm_source_position,
        min(case when utm_medium is not null then event_position end) as first_utm_medium_position,
        min(case when utm_campaign is not null then event_position end) as first_utm_campaign_position

    from positioned
    group by session_id

),

sessions as (

    select
        positioned.session_id,
        positioned.session_key,
        positioned.session_number,
        max(case when positioned.event_position = picked_positions.last_user_position
            then positioned.user_id end) as user_id,
        min(positioned.event_timestamp) as session_start,
        max(positioned.event_timestamp) as session_end,
        count(*) as event_count,
        sum(case when positioned.event_type = 'page_view' then 1 else 0 end) as page_view_count,
        sum(case when positioned.event_type = 'product_view' then 1 else 0 end) as product_view_count,
        sum(case when positioned.event_type = 'add_to_cart' then 1 else 0 end) as add_to_cart_count,
        sum(case when positioned.event_type = 'remove_from_cart' then 1 else 0 end)
            as remove_from_cart_count,
        sum(case when positioned.event_type = 'checkout' then 1 else 0 end) as checkout_count,
        sum(positioned.line_revenue) as revenue,
        max(case when positioned.event_position = picked_positions.first_utm_source_position
            then positioned.utm_source end) as utm_source,
        max(case when positioned.event_position = picked_positions.first_utm_medium_position
            then positioned.utm_medium end) as utm_medium,
        max(case when positioned.event_position = picked_positions.first_utm_campaign_position
            then positioned.utm_campaign end) as utm_campaign,
        max(case when positioned.event_position = 1 then positioned.platform end) as platform

    from positioned
    inner join picked_positions
        on positioned.session_id = picked_positions.session_id
    group by
        positioned.session_id,
        positioned.session_key,
        positioned.session_number

),

final as (

    select
        cast(sessions.session_id as {{ dbt.type_string() }}) as session_id,
        cast(touched_keys.session_key as {{ dbt.type_string() }}) as session_key,
        cast(sessions.session_number as {{ dbt.type_bigint() }}) as session_number,
        cast(sessions.user_id as {{ dbt.type_string() }}) as user_id,
        cast(sessions.session_start as {{ dbt.type_timestamp() }}) as session_start,
        cast(sessions.session_end as {{ dbt.type_timestamp() }}) as session_end,
        cast(
            {{ rtdp.microseconds_between('sessions.session_start', 'sessions.session_end') }}
            / 1000000.0 as double
        ) as duration_seconds,
        cast(sessions.event_count as {{ dbt.type_bigint() }}) as event_count,
        cast(sessions.page_view_count as {{ dbt.type_bigint() }}) as page_view_count,
        cast(sessions.product_view_count as {{ dbt.type_bigint() }}) as product_view_count,
        cast(sessions.add_to_cart_count as {{ dbt.type_bigint() }}) as add_to_cart_count,
        cast(sessions.remove_from_cart_count as {{ dbt.type_bigint() }}) as remove_from_cart_count,
        cast(sessions.checkout_count as {{ dbt.type_bigint() }}) as checkout_count,
        cast(round(sessions.revenue, 2) as decimal(18, 2)) as revenue,
        sessions.event_count = 1 as is_bounce,
        sessions.checkout_count > 0 as is_converted,
        cast(sessions.utm_source as {{ dbt.type_string() }}) as utm_source,
        cast(sessions.utm_medium as {{ dbt.type_string() }}) as utm_medium,
        cast(sessions.utm_campaign as {{ dbt.type_string() }}) as utm_campaign,
        cast(sessions.platform as {{ dbt.type_string() }}) as platform,
        cast(users.country as {{ dbt.type_string() }}) as user_country

    from touched_keys
    left join sessions
        on touched_keys.session_key = sessions.session_key
    left join users
        on sessions.user_id = users.user_id

)

select * from final
