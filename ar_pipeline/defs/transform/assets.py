"""dbt models (staging → intermediate → marts) as Dagster assets.

dbt sources are keyed `[source_name, table]`, the keys of the ingest assets, so each model hangs
off the assets that load its raw tables. Groups follow the dbt folder (staging, intermediate, marts).
"""


import os
from collections.abc import Mapping
from functools import cache
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from pydantic import Field

from ar_pipeline.defs.transform.project import ar_dbt_project
from ar_pipeline.lib.dbt_args import dbt_build_args, parse_as_of

LAYERS = ("staging", "intermediate", "marts")


class ArDbtTranslator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props.get("resource_type") != "model":
            return spec
        folder = next((part for part in props.get("fqn", []) if part in LAYERS), "transform")
        return spec.replace_attributes(group_name=folder)


class DbtBuildConfig(dg.Config):
    as_of_date: str | None = Field(
        default=None,
        description="Date the marts are computed as of (YYYY-MM-DD). Default: today in AR_TIMEZONE.",
    )


@cache
def build_ar_dbt_assets() -> dg.AssetsDefinition:
    project = ar_dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=ArDbtTranslator(),
        pool="duckdb",
    )
    def ar_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
        as_of = parse_as_of(config.as_of_date, os.environ.get("AR_TIMEZONE", "UTC"))
        context.log.info(f"Building dbt models as of {as_of.isoformat()}")
        yield from dbt.cli(dbt_build_args(as_of), context=context).stream()

    return ar_dbt_models


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[build_ar_dbt_assets()])
