{#
  analytics.rtdp_watermarks: one row per incremental model that cannot keep its watermark in
  its own columns (fact_sessions: §6 fixes its columns), plus the session gap each
  sessionized relation was built with. Created at run start so that models, unit tests
  (as a source) and `rtdp status` can read it on a fresh warehouse.
#}

{% macro run_state_relation() -%}
    {{ return(api.Relation.create(
        database=target.database, schema='analytics', identifier='rtdp_watermarks')) }}
{%- endmacro %}


{% macro create_run_state() -%}
    {%- if execute -%}
        {%- set relation = rtdp.run_state_relation() -%}
        {%- do run_query("create schema if not exists " ~ relation.without_identifier()) -%}
        {%- do run_query(
            "create table if not exists " ~ relation ~ " ("
            ~ " model_name " ~ dbt.type_string() ~ " not null,"
            ~ " max_loaded_at " ~ dbt.type_timestamp() ~ ","
            ~ " session_gap_seconds double precision,"
            ~ " updated_at " ~ dbt.type_timestamp() ~ " not null)") -%}
    {%- endif -%}
    select 1 as run_state_ready
{%- endmacro %}


{#
  Sessions built with one gap and then extended incrementally with another would match no
  full refresh (spec §7): refuse, and say which flag fixes it.
#}
{% macro check_session_gap() -%}
    {%- if execute and not flags.FULL_REFRESH -%}
        {%- set gap = var('session_gap_seconds') | float -%}
        {%- set rows = run_query(
            "select model_name, session_gap_seconds from " ~ rtdp.run_state_relation()
            ~ " where session_gap_seconds is not null and session_gap_seconds <> " ~ gap) -%}
        {%- if rows | length > 0 -%}
            {{ exceptions.raise_compiler_error(
                "session_gap_seconds is " ~ gap ~ " but " ~ rows[0][0] ~ " was built with "
                ~ rows[0][1] ~ "; run `rtdp transform --full-refresh` to rebuild sessions") }}
        {%- endif -%}
    {%- endif -%}
    select 1 as session_gap_checked
{%- endmacro %}


{# Post-hook: remember what `model_name` has reflected, atomically with its insert. #}
{% macro record_watermark(model_name, max_loaded_at_sql, with_gap=true) -%}
    delete from {{ rtdp.run_state_relation() }} where model_name = '{{ model_name }}';
    insert into {{ rtdp.run_state_relation() }}
        (model_name, max_loaded_at, session_gap_seconds, updated_at)
    select
        '{{ model_name }}',
        ({{ max_loaded_at_sql }}),
        {{ (var('session_gap_seconds') | float) if with_gap else 'null' }},
        {{ dbt.current_timestamp() }}
{%- endmacro %}
