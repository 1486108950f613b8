{#
  What differs between DuckDB and Snowflake, in one place (style: adapter.dispatch, never a
  copied model). Anything dbt already abstracts (hash → md5, dateadd, type names) comes from
  dbt's own cross-database macros instead.
#}

{# Exact elapsed microseconds from `start_ts` to `end_ts` (spec §5: never minute boundaries). #}
{% macro microseconds_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('microseconds_between', 'rtdp')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__microseconds_between(start_ts, end_ts) -%}
    {{ dbt.datediff(start_ts, end_ts, 'microsecond') }}
{%- endmacro %}

{% macro duckdb__microseconds_between(start_ts, end_ts) -%}
    (epoch_us({{ end_ts }}) - epoch_us({{ start_ts }}))
{%- endmacro %}

{% macro snowflake__microseconds_between(start_ts, end_ts) -%}
    {#- datediff counts unit boundaries; at microsecond unit on microsecond-precision
        timestamps (the converter truncates to µs) a boundary count is the exact difference. -#}
    datediff(microsecond, {{ start_ts }}, {{ end_ts }})
{%- endmacro %}


{# The raw JSON text as a queryable semi-structured value (unknown fields live there, spec §1). #}
{% macro parse_json(expr) -%}
    {{ return(adapter.dispatch('parse_json', 'rtdp')(expr)) }}
{%- endmacro %}

{% macro default__parse_json(expr) -%}
    {{ expr }}
{%- endmacro %}

{% macro duckdb__parse_json(expr) -%}
    cast({{ expr }} as json)
{%- endmacro %}

{% macro snowflake__parse_json(expr) -%}
    parse_json({{ expr }})
{%- endmacro %}


{#
  `expr` as a sort key that orders strings by their UTF-8 bytes (spec §3 tie-break on the raw
  JSON text, and §5 ties on event_id), whatever collation the account or column defaults to.
#}
{% macro byte_order(expr) -%}
    {{ return(adapter.dispatch('byte_order', 'rtdp')(expr)) }}
{%- endmacro %}

{% macro default__byte_order(expr) -%}
    {{ expr }}
{%- endmacro %}

{# DuckDB compares varchar with memcmp unless a collation is set; none is set here. #}
{% macro duckdb__byte_order(expr) -%}
    {{ expr }}
{%- endmacro %}

{# BINARY values compare byte by byte, whatever DEFAULT_DDL_COLLATION the account sets. #}
{% macro snowflake__byte_order(expr) -%}
    to_binary({{ expr }}, 'UTF-8')
{%- endmacro %}


{# The naive-UTC timestamp type of the raw tables (TIMESTAMP_NTZ on Snowflake). #}
{% macro timestamp_literal(iso_text) -%}
    cast('{{ iso_text }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}
