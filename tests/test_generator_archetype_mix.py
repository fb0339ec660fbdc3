"""`ar-pipeline generate --archetype-mix`: parsing and validation, and its effect on the customers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from ar_pipeline.cli import main
from ar_pipeline.lib.generator.config import ARCHETYPE_NAMES, parse_archetype_mix
from ar_pipeline.lib.generator.simulate import ARCHETYPE_P, ARCHETYPES


def test_names_match_the_simulation_order() -> None:
    assert list(ARCHETYPE_NAMES) == ARCHETYPES.tolist()


def test_parse_full_names_prefixes_and_unlisted_zero() -> None:
    w = parse_archetype_mix("prompt=0.2, chronic_late=0.4,DEFAULTER=1")
    assert w == (0.2, 0.0, 0.4, 0.0, 0.0, 1.0)
    assert parse_archetype_mix("pay_after=3") == (0.0, 3.0, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("prompt", "not name=weight"),
    ("=0.3", "not name=weight"),
    ("lazy=0.3", "unknown archetype 'lazy'"),
    ("p=0.3", "ambiguous archetype 'p'"),  # prompt_payer and pay_after_reminder
    ("prompt=0.3,prompt_payer=0.2", "'prompt_payer' given twice"),
    ("seasonal=abc", "'abc' of seasonal is not a number"),
    ("seasonal=-0.1", "must be a finite number >= 0"),
    ("seasonal=nan", "must be a finite number >= 0"),
    ("seasonal=inf", "must be a finite number >= 0"),
    ("seasonal=0,defaulter=0", "sum to 0"),
])
def test_bad_mixes_are_rejected_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_archetype_mix(text)


def _generate(tmp: Path, *extra: str) -> CliRunner:
    env = {"AR_LANDING_DIR": str(tmp)}
    return CliRunner().invoke(main, ["generate", "--quiet", "--customers", "40", "--invoices", "800", "--years",
                                     "0.5", "--end-date", "2026-06-30", *extra], env=env)


def test_cli_rejects_a_bad_mix_before_writing(tmp_path: Path) -> None:
    result = _generate(tmp_path / "bad", "--archetype-mix", "prompt=0.5,lazy=0.5")
    assert result.exit_code == 2
    assert "--archetype-mix" in result.output and "unknown archetype 'lazy'" in result.output
    assert not (tmp_path / "bad").exists()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_mix_changes_the_customers_and_the_default_mix_changes_nothing(tmp_path: Path) -> None:
    assert _generate(tmp_path / "default").exit_code == 0
    spelled = ",".join(f"{n}={w}" for n, w in zip(ARCHETYPE_NAMES, ARCHETYPE_P.tolist(), strict=True))
    assert _generate(tmp_path / "spelled", "--archetype-mix", spelled).exit_code == 0
    assert _files(tmp_path / "default") == _files(tmp_path / "spelled")

    assert _generate(tmp_path / "mix", "--archetype-mix", "chronic_late=3,defaulter=1").exit_code == 0
    counts = dict(pl.read_parquet(tmp_path / "mix" / "_ground_truth" / "customers.parquet")
                  .group_by("archetype").len().iter_rows())
    assert counts == {"chronic_late": 30, "defaulter": 10}  # 40 customers in a 3:1 quota
    default = pl.read_parquet(tmp_path / "default" / "_ground_truth" / "customers.parquet")
    assert default["archetype"].n_unique() == 6
