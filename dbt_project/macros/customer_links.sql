{#-
    Cross-source customer linking (int_customer_links, int_customer_groups).

    var('customer_link_rules'): ordered list of match keys from email, tax_id, name. Two customers of
    different sources are linked when they share a normalised key of any listed rule; a pair is
    reported under the first listed rule it matches. [] turns linking off.
-#}

{#- The validated rule list (a compile error names what is wrong). -#}
{% macro customer_link_rules() -%}
    {%- set allowed = ['email', 'tax_id', 'name'] -%}
    {%- set rules = var('customer_link_rules', ['email', 'tax_id']) -%}
    {%- if rules is none -%}
        {%- set rules = [] -%}
    {%- endif -%}
    {%- if rules is string or rules is mapping or rules is not iterable -%}
        {{ exceptions.raise_compiler_error(
            "var('customer_link_rules') must be a list drawn from " ~ allowed | join(', ')
            ~ " (e.g. [email, tax_id]; [] turns linking off), got: " ~ rules) }}
    {%- endif -%}
    {%- set seen = [] -%}
    {%- for rule in rules -%}
        {%- if rule not in allowed -%}
            {{ exceptions.raise_compiler_error(
                "var('customer_link_rules'): unknown rule '" ~ rule ~ "'; allowed: " ~ allowed | join(', ')) }}
        {%- endif -%}
        {%- if rule in seen -%}
            {{ exceptions.raise_compiler_error(
                "var('customer_link_rules'): rule '" ~ rule ~ "' is listed twice") }}
        {%- endif -%}
        {%- do seen.append(rule) -%}
    {%- endfor -%}
    {{ return(seen) }}
{%- endmacro %}


{#- SQL for a customer's normalised key under `rule`, from int_customers_unioned columns (null when
    the customer has no usable value). -#}
{% macro customer_link_key(rule) -%}
    {%- if rule == 'email' -%}
        nullif(lower(trim(email)), '')
    {%- elif rule == 'tax_id' -%}
        {%- set cleaned = regexp_replace_all('upper(tax_id)', '[^A-Z0-9]', '') -%}
        {#- QuickBooks returns tax ids masked (XXXXXX56789): a run of X then the last five characters
            can never be compared, so it is no key. -#}
        case
            when {{ cleaned }} like 'X%'
                and length({{ regexp_replace_all(cleaned, '^X+', '') }}) <= 5 then null
            else nullif({{ cleaned }}, '')
        end
    {%- elif rule == 'name' -%}
        {%- set suffixes = ['inc', 'incorporated', 'llc', 'llp', 'lp', 'ltd', 'limited', 'plc', 'corp',
            'corporation', 'co', 'company', 'gmbh', 'ag', 'kg', 'sa', 'sas', 'sarl', 'sl', 'srl', 'spa',
            'bv', 'nv', 'ab', 'oy', 'as', 'aps', 'pty', 'pte', 'kk'] -%}
        {#- lower case, punctuation to spaces, single spaces, then legal-form words dropped from the
            end (three passes: 'Pty. Ltd.', 'Co., Ltd.') -#}
        {%- set ns = namespace(key=dbt.concat(["' '", "trim(" ~ regexp_replace_all(
            regexp_replace_all('lower(customer_name)', '[^a-z0-9]+', ' '), '[ ]+', ' ') ~ ")"])) -%}
        {%- for _ in range(3) -%}
            {%- set ns.key = regexp_replace_all(ns.key, '[ ](' ~ suffixes | join('|') ~ ')$', '') -%}
        {%- endfor -%}
        nullif(trim({{ ns.key }}), '')
    {%- else -%}
        {{ exceptions.raise_compiler_error("customer_link_key: unknown rule " ~ rule) }}
    {%- endif -%}
{%- endmacro %}
