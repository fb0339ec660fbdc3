"""Collections worklist: who to remind today, about what, how, when and in what tone.

- `policy`: the `kind: collections_policy` YAML (levels, exclusions, escalation, tone, timing).
- `queue`: pure polars logic building one reminder row per customer for an as-of date.
- `warehouse`: reads the queue's inputs from the marts and the collections tables in DuckDB.
- `store`: the operational tables `analytics.reminder_log` and `analytics.collection_notes`.
- `render`: sandboxed Jinja subject/body templates and the formula-safe CSV/XLSX export.
- `send`: delivery by SMTP or webhook, at most once per reminder id.
"""
