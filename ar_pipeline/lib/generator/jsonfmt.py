"""Build JSON text with polars string expressions (exact money formatting, no floats)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

L = pl.lit
Piece = "pl.Expr | str"


def q(e: pl.Expr) -> pl.Expr:
    """JSON string from a (safe, escape-free) string expression; null stays null."""
    return pl.concat_str([L('"'), e, L('"')])


def qn(e: pl.Expr) -> pl.Expr:
    """JSON string or null."""
    return q(e).fill_null(L("null"))


def s(e: pl.Expr) -> pl.Expr:
    """Integer expression as JSON number text."""
    return e.cast(pl.Int64).cast(pl.String)


def sn(e: pl.Expr) -> pl.Expr:
    return s(e).fill_null(L("null"))


def b(e: pl.Expr) -> pl.Expr:
    return pl.when(e).then(L("true")).otherwise(L("false"))


def money(e: pl.Expr) -> pl.Expr:
    """Integer cents -> JSON number the way Python prints floats: 314.28, 275.0, 12.5."""
    a = e.cast(pl.Int64).abs()
    ip = (a // 100).cast(pl.String)
    fr = a % 100
    body = (
        pl.when(fr == 0)
        .then(pl.concat_str([ip, L(".0")]))
        .when(fr % 10 == 0)
        .then(pl.concat_str([ip, L("."), (fr // 10).cast(pl.String)]))
        .otherwise(pl.concat_str([ip, L("."), fr.cast(pl.String).str.zfill(2)]))
    )
    return pl.when(e < 0).then(pl.concat_str([L("-"), body])).otherwise(body)


def rate6(e: pl.Expr) -> pl.Expr:
    """Integer rate * 1e6 -> '1.084512' (6 decimals)."""
    a = e.cast(pl.Int64)
    return pl.concat_str(
        [(a // 1_000_000).cast(pl.String), L("."), (a % 1_000_000).cast(pl.String).str.zfill(6)]
    )


def date_s(day: pl.Expr) -> pl.Expr:
    """Day number -> 'YYYY-MM-DD'."""
    return day.cast(pl.Int32).cast(pl.Date).cast(pl.String)


def qbo_ts(secs: pl.Expr) -> pl.Expr:
    """Local (company, America/Los_Angeles) wall-clock seconds -> ISO-8601 with offset."""
    return (
        pl.from_epoch(secs.cast(pl.Int64), time_unit="s")
        .dt.replace_time_zone("America/Los_Angeles", ambiguous="earliest", non_existent="null")
        .dt.to_string("%Y-%m-%dT%H:%M:%S%:z")
    )


def members(pairs: Sequence[tuple[str, pl.Expr | str]]) -> pl.Expr | str:
    """'"k":v,"k2":v2' (no braces). A str value is literal JSON text; an Expr is a column of JSON
    text. Returns a str when every value is literal."""
    pieces: list = []
    buf = ""
    for i, (k, v) in enumerate(pairs):
        buf += ("" if i == 0 else ",") + json.dumps(k) + ":"
        if isinstance(v, str):
            buf += v
        else:
            if buf:
                pieces.append(L(buf))
            pieces.append(v)
            buf = ""
    if not pieces:
        return buf
    if buf:
        pieces.append(L(buf))
    return pl.concat_str(pieces)


def obj(pairs: Sequence[tuple[str, pl.Expr | str]]) -> pl.Expr | str:
    m = members(pairs)
    if isinstance(m, str):
        return "{" + m + "}"
    return pl.concat_str([L("{"), m, L("}")])


def frag(pieces: Iterable[pl.Expr | str]) -> pl.Expr:
    """Concatenate literal text and expressions."""
    return pl.concat_str([L(p) if isinstance(p, str) else p for p in pieces])


def lit(v) -> str:
    """Python value -> literal JSON text."""
    return json.dumps(v, separators=(",", ":"))


_B62 = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


def base62(nums: np.ndarray, width: int) -> np.ndarray:
    nums = np.asarray(nums, dtype=np.uint64)
    pw = np.array([62**i for i in range(width - 1, -1, -1)], dtype=np.uint64)
    digits = (nums[:, None] // pw[None, :]) % np.uint64(62)
    chars = _B62[digits.astype(np.int64)]
    return np.ascontiguousarray(chars).view(f"<U{width}").ravel()


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stripe_ids(prefix: str, idx: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic, unique, Stripe-looking ids: prefix + 24 chars (the last 6 encode idx)."""
    idx = np.asarray(idx, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = _splitmix(idx * np.uint64(1_000_003) + np.uint64(salt))
    tag = base62(_splitmix(np.array([salt * 7 + 99_991], dtype=np.uint64)) % np.uint64(62**7), 7)[0]
    head = base62(mixed % np.uint64(62**10), 10)
    return np.char.add(np.char.add(f"{prefix}1{tag}", head), base62(idx % np.uint64(62**6), 6))


class PageWriter:
    """Writes envelopes around pre-rendered records; tracks bytes.

    Records are rendered by polars with a trailing comma, then pages are cut straight out of the
    Arrow string buffer (no per-record Python objects)."""

    def __init__(self, progress=None, task=None):
        self.progress = progress
        self.task = task
        self.bytes = 0

    def write_entity(
        self,
        folder: Path,
        df: pl.DataFrame,
        record: pl.Expr,
        page_size: int,
        wrap: Callable[[int, int, bool], tuple[str, str]],
        chunk_pages: int = 50,
        prepare: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    ) -> tuple[int, int]:
        """Render ``record`` over ``df`` (already in file order) and write pages.
        ``wrap(page_no, n_on_page, is_last)`` returns the (head, tail) text around the records.
        ``prepare(slice)`` (optional) adds per-record columns to each slice just before rendering,
        so large derived text (e.g. nested line items) only ever exists for one chunk at a time."""
        folder.mkdir(parents=True, exist_ok=True)
        n = df.height
        n_pages = max(1, -(-n // page_size))
        chunk = page_size * chunk_pages
        page = 0
        for c0 in range(0, max(n, 1), chunk):
            part = df.slice(c0, chunk)
            m = part.height
            if m:
                if prepare is not None:
                    part = prepare(part)
                ser = part.select(pl.concat_str([record, L(",")]).alias("j")).to_series()
                arr = ser.to_arrow(compat_level=pl.CompatLevel.oldest())
                if hasattr(arr, "combine_chunks"):
                    arr = arr.combine_chunks()
                bufs = arr.buffers()
                offs = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + m + 1]
                data = memoryview(bufs[2])
            for p0 in range(0, max(m, 1), page_size):
                k = min(page_size, m - p0)
                page += 1
                head, tail = wrap(page, k, page == n_pages)
                hb, tb = head.encode(), tail.encode()
                with open(folder / f"page_{page:05d}.json", "wb") as f:
                    f.write(hb)
                    size = len(hb) + len(tb)
                    if k > 0:
                        body = data[int(offs[p0]) : int(offs[p0 + k]) - 1]
                        f.write(body)
                        size += len(body)
                    f.write(tb)
                self.bytes += size
                if self.progress is not None:
                    self.progress.advance(self.task, 1)
            part = ser = arr = bufs = offs = data = None
        return n, page
