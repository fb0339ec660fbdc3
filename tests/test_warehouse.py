"""lib.warehouse.marts_as_of: the marts' as-of date, asked the same way by hygiene and collections."""

from datetime import date

import duckdb
import pytest

from ar_pipeline.lib.warehouse import marts_as_of


def _marts(invoice_dates: list[date | None], customer_dates: list[date | None]) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA marts")
    conn.execute("CREATE TABLE marts.fct_invoices (invoice_key VARCHAR, as_of_date DATE)")
    conn.execute("CREATE TABLE marts.dim_customers (customer_id VARCHAR, as_of_date DATE)")
    for i, d in enumerate(invoice_dates):
        conn.execute("INSERT INTO marts.fct_invoices VALUES (?, ?)", [f"i{i}", d])
    for i, d in enumerate(customer_dates):
        conn.execute("INSERT INTO marts.dim_customers VALUES (?, ?)", [f"c{i}", d])
    return conn


@pytest.mark.parametrize("required", [True, False])
def test_the_one_invoice_date_wins(required: bool) -> None:
    conn = _marts([date(2026, 3, 31)] * 3, [date(2026, 3, 31)])
    assert marts_as_of(conn, required=required) == date(2026, 3, 31)


@pytest.mark.parametrize("required", [True, False])
def test_no_invoice_falls_back_to_customers(required: bool) -> None:
    assert marts_as_of(_marts([], [date(2026, 1, 15), date(2026, 1, 15)]), required=required) == date(2026, 1, 15)


@pytest.mark.parametrize("required", [True, False])
def test_several_dates_is_an_error(required: bool) -> None:
    with pytest.raises(ValueError, match="several as_of_date values"):
        marts_as_of(_marts([date(2026, 1, 1), date(2026, 1, 2)], []), required=required)
    with pytest.raises(ValueError, match="marts.dim_customers holds several"):
        marts_as_of(_marts([], [date(2026, 1, 1), date(2026, 1, 2)]), required=required)


def test_empty_marts_none_or_error() -> None:
    assert marts_as_of(_marts([], []), required=False) is None
    with pytest.raises(RuntimeError, match="empty"):
        marts_as_of(_marts([], []), required=True)


@pytest.mark.parametrize("required", [True, False])
def test_marts_never_built_is_an_error(required: bool) -> None:
    with pytest.raises(RuntimeError, match="build the marts first"):
        marts_as_of(duckdb.connect(), required=required)
