{#-
    Convert an integer amount in a currency's minor unit (Stripe) to major units.
    exponent_expr is the currency's number of decimals (see seed currency_exponents).
-#}
{% macro minor_to_major(amount_expr, exponent_expr) -%}
    cast(
        cast({{ amount_expr }} as {{ dbt.type_numeric() }}) / power(10, {{ exponent_expr }})
        as {{ dbt.type_numeric() }}
    )
{%- endmacro %}


{#- Amount in major units, cast to the project's money type. -#}
{% macro to_money(amount_expr) -%}
    cast({{ amount_expr }} as {{ dbt.type_numeric() }})
{%- endmacro %}


{#- Home-currency amount: round(amount x exchange_rate, 2); null when the rate is unknown. -#}
{% macro to_home_amount(amount_expr, exchange_rate_expr) -%}
    cast(round({{ amount_expr }} * {{ exchange_rate_expr }}, 2) as {{ dbt.type_numeric() }})
{%- endmacro %}


{#- Exchange rates keep 10 decimals: QuickBooks sends rates with more than the 2-6 shown on screen,
    and rounding a rate before multiplying moves home amounts by cents. -#}
{% macro to_rate(rate_expr) -%}
    cast({{ rate_expr }} as decimal(28, 10))
{%- endmacro %}
