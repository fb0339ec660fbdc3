"""The dbt project as a Dagster `DbtProject` (manifest prepared on demand, never at import)."""

from __future__ import annotations

from functools import cache

from dagster_dbt import DbtProject

from ar_pipeline.lib.settings import DBT_PROJECT_DIR


@cache
def ar_dbt_project() -> DbtProject:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    # Under `dagster dev` the manifest is rebuilt on every load; elsewhere build it once if missing
    # (the CLI and the tests call `prepare_dbt_manifest()` explicitly before loading definitions).
    project.prepare_if_dev()
    if not project.manifest_path.exists():
        project.preparer.prepare(project)
    return project


def prepare_dbt_manifest() -> None:
    """Re-parse the dbt project so the manifest matches the models on disk."""
    project = ar_dbt_project()
    project.preparer.prepare(project)
