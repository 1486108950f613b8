{#
  Schemas are exactly `raw` (loader-owned sources) and `analytics` (everything dbt builds),
  on every target: the spec (§8) names relations `analytics.<model>`, so dbt's default of
  prefixing the target schema (`analytics_analytics`) is wrong here.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        analytics
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
