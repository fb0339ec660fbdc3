"""Registers the collections worklist assets (`collections.py`) with the defs folder loader."""

import dagster as dg

from ar_pipeline.defs.analytics.collections import build_collections_assets
from ar_pipeline.defs.analytics.column_schemas import with_column_schemas


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=with_column_schemas([build_collections_assets()]))
