{#
  Building blocks of the exact incremental logic (spec §7). The design, in short:

  * Watermark: each incremental model remembers the newest raw `loaded_at` it has reflected
    (`_max_loaded_at` in its own rows, or a row of analytics.rtdp_watermarks for
    fact_sessions whose columns are fixed by §6). A run reads raw rows loaded after it,
    minus `incremental_lookback_seconds` for rows committed out of loaded_at order.
  * Unit of recomputation: never a row, always a whole group that is a pure function of
    raw data — an event_id (stg_events), a session key (int_events_sessionized,
    fact_sessions), a physical line (events_quarantine). The group is recomputed from ALL
    its history, so re-reading a row twice, late rows, and any batching give the same result.
  * Replacement: rows of a recomputed group are deleted and re-inserted (`replace_keys`
    strategy below). A group that is touched but now empty (a session key whose only events
    were won by rows of another key) still reaches the delete through a marker row.
#}

{# Spec §5: the session key is anonymous_id, else user_id; empty strings count as missing. #}
{% macro session_key(anonymous_id, user_id) -%}
    coalesce(nullif({{ anonymous_id }}, ''), nullif({{ user_id }}, ''))
{%- endmacro %}


{#
  The lower bound on raw `loaded_at` for an incremental run: the model's watermark minus
  the lookback. An empty or missing watermark means "since forever" (full recompute, still
  through the incremental path, still exact).
#}
{% macro incremental_lookback_seconds() -%}
    {%- set configured = var('incremental_lookback_seconds', '') | string | trim -%}
    {%- if configured in ('', 'None') -%}
        {{ return(0 if target.type == 'duckdb' else 600) }}
    {%- endif -%}
    {{ return(configured | int) }}
{%- endmacro %}

{% macro incremental_since(max_loaded_at_sql) -%}
    {%- set lookback_seconds = rtdp.incremental_lookback_seconds() -%}
    {%- set watermark = "coalesce((" ~ max_loaded_at_sql ~ "), "
        ~ rtdp.timestamp_literal('1900-01-01 00:00:00') ~ ")" -%}
    {{ dbt.dateadd('second', -1 * lookback_seconds, watermark) }}
{%- endmacro %}


{# The inactivity gap of spec §5 in microseconds, validated. #}
{% macro session_gap_microseconds() -%}
    {%- set gap_seconds = var('session_gap_seconds') | float -%}
    {%- if gap_seconds <= 0 -%}
        {{ exceptions.raise_compiler_error(
            "session_gap_seconds must be positive, got " ~ var('session_gap_seconds')) }}
    {%- endif -%}
    {{ (gap_seconds * 1000000) | round | int }}
{%- endmacro %}


{#
  Custom incremental strategy `replace_keys`: delete every target row whose `unique_key`
  occurs in the batch, then insert the batch rows whose column named by
  `meta.replace_keys_marker_column` is not
  null. Batch rows with a null marker column only carry a key to delete (a group that became
  empty). Cross-database: plain delete/insert, dispatched for adapters that need otherwise.
#}
{% macro get_incremental_replace_keys_sql(arg_dict) -%}
    {{ return(adapter.dispatch('replace_keys_sql', 'rtdp')(arg_dict)) }}
{%- endmacro %}

{% macro default__replace_keys_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set batch = arg_dict['temp_relation'] -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set marker = (config.get('meta') or {}).get('replace_keys_marker_column') -%}
    {%- if not key or key is not string or not marker -%}
        {{ exceptions.raise_compiler_error(
            "replace_keys needs one unique_key column and meta.replace_keys_marker_column") }}
    {%- endif -%}
    {%- set columns_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    where {{ key }} in (select {{ key }} from {{ batch }});

    insert into {{ target }} ({{ columns_csv }})
    select {{ columns_csv }}
    from {{ batch }}
    where {{ marker }} is not null
{%- endmacro %}
