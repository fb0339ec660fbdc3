"""Attach each analytics table's documented columns to its asset as `dagster/column_schema`, so the
Dagster UI shows them. The columns come from the one declaration of the analytics tables,
`dbt_project/models/analytics/_analytics__sources.yml` (see `ar_pipeline.lib.data_dictionary`).

Each analytics defs module passes its assets through `with_column_schemas` in its `defs()`.
"""

from collections.abc import Sequence

import dagster as dg

from ar_pipeline.lib.data_dictionary import analytics_tables


def column_schema(table_name: str) -> dg.TableSchema | None:
    table = next((t for t in analytics_tables() if t.name == table_name), None)
    if table is None:
        return None
    return dg.TableSchema(columns=[
        dg.TableColumn(name=c.name, type=c.data_type or "unknown", description=c.description or None)
        for c in table.columns
    ])


def _with_schema(spec: dg.AssetSpec) -> dg.AssetSpec:
    path = spec.key.path
    schema = column_schema(path[-1]) if len(path) == 2 and path[0] == "analytics" else None
    if schema is None:
        return spec
    return spec.merge_attributes(metadata={"dagster/column_schema": schema})


def with_column_schemas(assets: Sequence) -> list:
    """The assets with `dagster/column_schema` on every spec keyed ["analytics", <documented table>]."""
    return list(dg.map_asset_specs(_with_schema, assets))
