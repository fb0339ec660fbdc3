{#-
    Fails for every row where the boolean SQL expression is not true.
    Model-level:  data_tests: [{expression_is_true: {arguments: {expression: "open_amount >= 0"}}}]
    Column-level: the expression is appended to the column ("column_name" + " >= 0").
-#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not (
    {%- if column_name is none %}
    {{ expression }}
    {%- else %}
    {{ column_name }} {{ expression }}
    {%- endif %}
)

{% endtest %}
