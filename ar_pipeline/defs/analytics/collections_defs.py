"""Registers the collections worklist assets (`collections.py`) with the defs folder loader."""

import dagster as dg

from ar_pipeline.defs.analytics.collections import build_collections_assets


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[build_collections_assets()])
