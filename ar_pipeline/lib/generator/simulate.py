"""Latent-behaviour simulation of customers, invoices, payments and credits (numpy, vectorised).

All dates are integer days since 1970-01-01 (``numpy.int64``). All money is integer minor units
(cents). Nothing here knows about JSON; ``quickbooks.py`` / ``stripe.py`` serialise the result and
``truth.py`` derives the ground truth from the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from . import qbo_unapplied
from .config import GeneratorConfig

EPOCH = date(1970, 1, 1)
NEVER = np.int64(10**7)  # a day number far in the future ("never happens")

ARCHETYPES = np.array(
    ["prompt_payer", "pay_after_reminder", "chronic_late", "seasonal", "deteriorating", "defaulter"]
)
ARCHETYPE_P = np.array([0.34, 0.25, 0.13, 0.12, 0.135, 0.025])
SEGMENTS = np.array(["enterprise", "mid_market", "smb"])
SEGMENT_P = np.array([0.15, 0.35, 0.50])
REGIONS = np.array(["north_america", "europe", "uk", "apac"])
REGION_P = np.array([0.62, 0.15, 0.11, 0.12])
CURRENCIES = np.array(["USD", "EUR", "GBP", "CAD"])
FX_BASE = np.array([1.0, 1.085, 1.27, 0.735])  # USD per unit of currency

SOURCES = np.array(["quickbooks", "stripe"])
QBO, STRIPE = 0, 1


def day_of(d: date) -> int:
    return (d - EPOCH).days


def weekday(days: np.ndarray) -> np.ndarray:
    """Monday=0 .. Sunday=6 (1970-01-01 was a Thursday)."""
    return (days + 3) % 7


def civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised (year, month, day) from day numbers."""
    d = np.asarray(days).astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    return y, m, dd


def _quota(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    """Category index per item with counts as close to n*p as possible, shuffled."""
    raw = p / p.sum() * n
    cnt = np.floor(raw).astype(np.int64)
    rem = n - cnt.sum()
    if rem > 0:
        order = np.argsort(-(raw - cnt), kind="stable")
        cnt[order[:rem]] += 1
    out = np.repeat(np.arange(len(p)), cnt)
    rng.shuffle(out)
    return out


def _group_rank(keys: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal (sorted) keys."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    start = np.r_[True, keys[1:] != keys[:-1]]
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(start, idx, 0))
    return idx - first


@dataclass
class Sim:
    cfg: GeneratorConfig
    start_day: int
    end_day: int
    customers: pl.DataFrame
    invoices: pl.DataFrame
    lines: pl.DataFrame
    applications: pl.DataFrame  # cash applications (payment parts) dated <= end
    credits: pl.DataFrame  # QBO credit memos / Stripe pre-payment credit notes existing at end
    fx: np.ndarray  # (4, n_days) rate * 1e6, USD per unit
    unapplied: pl.DataFrame  # QBO stand-alone unapplied payments (cust, day, amount, src_key)
    unapplied_truth: pl.DataFrame  # what each pays (qbo_unapplied.build)
    drafts: pl.DataFrame  # Stripe draft invoices (not AR)
    refunds: pl.DataFrame  # Stripe refunds (+ post-payment credit notes)
    disputes: pl.DataFrame  # Stripe disputes

    def fx_rate(self, cur: np.ndarray, day: np.ndarray) -> np.ndarray:
        di = np.clip(day - self.start_day, 0, self.fx.shape[1] - 1)
        return self.fx[cur, di]


def fx_published(start_day: int, n_days: int) -> np.ndarray:
    """Day numbers a reference rate is published for: weekdays (banks and the ECB publish none at
    weekends), plus the first day of the history so every day has a rate on or before it."""
    days = np.arange(start_day, start_day + n_days, dtype=np.int64)
    return days[(weekday(days) < 5) | (days == start_day)]


def _hold_over_weekends(fx: np.ndarray, start_day: int) -> np.ndarray:
    """A weekend day's rate is the last published (Friday's) rate, as in QuickBooks' daily rates
    and in a bank's rates file, so the rates file gives every document its own rate."""
    n_days = fx.shape[1]
    published = fx_published(start_day, n_days) - start_day
    last = published[np.searchsorted(published, np.arange(n_days), side="right") - 1]
    return fx[:, last]


def _fx_table(rng: np.random.Generator, n_days: int) -> np.ndarray:
    out = np.empty((4, n_days), dtype=np.int64)
    out[0] = 1_000_000
    for c in range(1, 4):
        base = np.log(FX_BASE[c])
        shocks = rng.normal(0.0, 0.0045, n_days)
        x = np.empty(n_days)
        x[0] = base + rng.normal(0, 0.03)
        # mean-reverting random walk (loop over days, not over records)
        for t in range(1, n_days):
            x[t] = x[t - 1] + shocks[t] - 0.01 * (x[t - 1] - base)
        out[c] = np.round(np.exp(x) * 1e6).astype(np.int64)
    return out


_NAME_A = [
    "Acme",
    "Apex",
    "Atlas",
    "Aurora",
    "Beacon",
    "Birch",
    "Blue",
    "Bright",
    "Cascade",
    "Cedar",
    "Civic",
    "Cobalt",
    "Copper",
    "Crest",
    "Delta",
    "Eagle",
    "Echo",
    "Ember",
    "Evergreen",
    "Falcon",
    "Fern",
    "Frontier",
    "Global",
    "Golden",
    "Granite",
    "Harbor",
    "Helix",
    "Horizon",
    "Iron",
    "Juniper",
    "Keystone",
    "Lakeside",
    "Legacy",
    "Lumen",
    "Maple",
    "Meridian",
    "Metro",
    "Nova",
    "Oak",
    "Orbit",
    "Pacific",
    "Peak",
    "Pine",
    "Pioneer",
    "Prairie",
    "Quantum",
    "Redwood",
    "Ridge",
    "River",
    "Sage",
    "Silver",
    "Sterling",
    "Summit",
    "Tandem",
    "Terra",
    "Titan",
    "Union",
    "Vector",
    "Vista",
    "Willow",
    "Zenith",
]
_NAME_B = [
    "Analytics",
    "Bakery",
    "Builders",
    "Cafe",
    "Clinic",
    "Consulting",
    "Design",
    "Dynamics",
    "Electric",
    "Energy",
    "Engineering",
    "Foods",
    "Freight",
    "Health",
    "Holdings",
    "Industries",
    "Labs",
    "Logistics",
    "Manufacturing",
    "Media",
    "Medical",
    "Motors",
    "Networks",
    "Outfitters",
    "Partners",
    "Pharma",
    "Plumbing",
    "Printing",
    "Realty",
    "Retail",
    "Robotics",
    "Software",
    "Solutions",
    "Studios",
    "Supply",
    "Systems",
    "Textiles",
    "Therapeutics",
    "Tools",
    "Trading",
    "Ventures",
    "Wholesale",
]
_SUFFIX = {
    "US": ["Inc", "LLC", "Corp", "Co"],
    "CA": ["Inc", "Ltd"],
    "DE": ["GmbH", "AG"],
    "FR": ["SAS", "SARL"],
    "NL": ["BV"],
    "IE": ["Ltd"],
    "ES": ["SL"],
    "GB": ["Ltd", "PLC"],
    "AU": ["Pty Ltd"],
    "SG": ["Pte Ltd"],
    "JP": ["KK"],
    "NZ": ["Ltd"],
}
_COUNTRIES = {
    0: (["US", "CA"], [0.88, 0.12]),
    1: (["DE", "FR", "NL", "IE", "ES"], [0.35, 0.25, 0.15, 0.12, 0.13]),
    2: (["GB"], [1.0]),
    3: (["AU", "SG", "JP", "NZ"], [0.45, 0.25, 0.2, 0.1]),
}
_SUBDIV = {
    "US": ["CA", "NY", "TX", "WA", "IL", "MA", "CO", "GA", "FL", "OR"],
    "CA": ["ON", "BC", "QC", "AB"],
    "DE": ["BE", "BY", "HH"],
    "FR": ["IDF", "ARA"],
    "NL": ["NH", "ZH"],
    "IE": ["D"],
    "ES": ["MD", "CT"],
    "GB": ["ENG", "SCT", "WLS"],
    "AU": ["NSW", "VIC", "QLD"],
    "SG": ["SG"],
    "JP": ["13", "27"],
    "NZ": ["AUK", "WGN"],
}
_CITY = {
    "US": [
        "San Francisco",
        "New York",
        "Austin",
        "Seattle",
        "Chicago",
        "Boston",
        "Denver",
        "Atlanta",
        "Miami",
        "Portland",
    ],
    "CA": ["Toronto", "Vancouver", "Montreal", "Calgary"],
    "DE": ["Berlin", "Munich", "Hamburg"],
    "FR": ["Paris", "Lyon"],
    "NL": ["Amsterdam", "Rotterdam"],
    "IE": ["Dublin"],
    "ES": ["Madrid", "Barcelona"],
    "GB": ["London", "Edinburgh", "Cardiff"],
    "AU": ["Sydney", "Melbourne", "Brisbane"],
    "SG": ["Singapore"],
    "JP": ["Tokyo", "Osaka"],
    "NZ": ["Auckland", "Wellington"],
}
_US_TAX_PPM = np.array([72_500, 80_000, 62_500, 60_000, 87_500])
_AREA = ["415", "212", "512", "206", "312", "617", "303", "404", "305", "503"]


def _make_customers(rng: np.random.Generator, cfg: GeneratorConfig, start: int, end: int):
    n = cfg.customers
    n_days = end - start + 1
    source = np.zeros(n, dtype=np.int64)
    n_stripe = int(round(0.4 * n)) if n >= 2 else 0
    source[rng.permutation(n)[:n_stripe]] = STRIPE
    weights = ARCHETYPE_P if cfg.archetype_weights is None else np.array(cfg.archetype_weights, dtype=float)
    arche = _quota(rng, n, weights)
    seg = _quota(rng, n, SEGMENT_P)
    region = rng.choice(4, size=n, p=REGION_P)

    country = np.empty(n, dtype=object)
    for r, (cs, ps) in _COUNTRIES.items():
        m = region == r
        country[m] = rng.choice(np.array(cs, dtype=object), size=int(m.sum()), p=ps)
    cur = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    q = source == QBO
    cur[q & (region == 1) & (u < 0.75)] = 1
    cur[q & (region == 2) & (u < 0.80)] = 2
    cur[q & (country == "CA") & (u < 0.80)] = 3
    # Some Stripe customers bill in EUR/GBP too: Stripe carries no exchange rate, so their home
    # amounts come from the daily rates file (reference/fx_rates/), the same `fx` table QBO uses.
    st = source == STRIPE
    cur[st & (region == 1) & (u < 0.50)] = 1
    cur[st & (region == 2) & (u < 0.50)] = 2

    terms = np.empty(n, dtype=np.int64)
    for s, (opts, ps) in enumerate(
        [
            ([30, 45, 60], [0.4, 0.3, 0.3]),
            ([15, 30, 45], [0.2, 0.6, 0.2]),
            ([0, 15, 30], [0.2, 0.35, 0.45]),
        ]
    ):
        m = seg == s
        terms[m] = rng.choice(opts, size=int(m.sum()), p=ps)
    auto = (source == STRIPE) & (rng.random(n) < np.array([0.0, 0.25, 0.55])[seg])
    terms[auto] = 0
    batch = (source == QBO) & (rng.random(n) < np.array([0.5, 0.3, 0.1])[seg])

    # activity window and default date
    late_start = rng.random(n) < 0.25
    s_off = np.where(late_start, np.floor(rng.random(n) * 0.7 * n_days), 0).astype(np.int64)
    c_start = start + s_off
    default_day = np.full(n, NEVER, dtype=np.int64)
    dm = arche == 5
    lo = np.maximum(s_off + 0.15 * n_days, 0.30 * n_days)
    dd = lo + rng.random(n) * np.maximum(0.85 * n_days - lo, 1)
    default_day[dm] = start + np.floor(dd[dm]).astype(np.int64)
    c_end = np.where(dm, np.minimum(end, default_day + rng.integers(60, 150, n)), end)
    created = c_start - rng.integers(3, 120, n)

    # behaviour parameters
    mu = np.select(
        [arche == 0, arche == 1, arche == 2, arche == 3, arche == 4, arche == 5],
        [
            rng.uniform(-4, 1, n),
            rng.uniform(6, 14, n),
            rng.uniform(32, 55, n),
            rng.uniform(0, 6, n),
            rng.uniform(-2, 4, n),
            rng.uniform(4, 16, n),
        ],
    )
    sd = np.array([3.0, 4.0, 9.0, 4.0, 5.0, 6.0])[arche]
    season_extra = rng.uniform(18, 30, n)
    drift = rng.uniform(35, 60, n)
    seg_median = np.array([8000.0, 2000.0, 450.0])[seg]
    scale = np.exp(rng.normal(0, 0.45, n))
    med_cents = seg_median * scale * 100
    volume = np.exp(rng.normal(0, 1.0, n)) * np.array([3.0, 1.6, 1.0])[seg]
    volume *= (c_end - c_start + 1) / n_days

    tax_ppm = np.zeros(n, dtype=np.int64)
    us = (country == "US") & (source == QBO) & (rng.random(n) < 0.55)
    tax_ppm[us] = rng.choice(_US_TAX_PPM, size=int(us.sum()))
    tax_ppm[(country == "CA") & (source == QBO)] = 50_000

    # names (loop over customers is fine)
    a = rng.integers(0, len(_NAME_A), n)
    b = rng.integers(0, len(_NAME_B), n)
    sfx = rng.integers(0, 4, n)
    city_i = rng.integers(0, 10, n)
    street = rng.integers(1, 9999, n)
    postal = rng.integers(10000, 99999, n)
    phone = rng.integers(2000000, 9999999, n)
    names, emails, cities, subdivs, phones = [], [], [], [], []
    seen: dict[str, int] = {}
    for i in range(n):
        c = country[i]
        sf = _SUFFIX[c][sfx[i] % len(_SUFFIX[c])]
        base = f"{_NAME_A[a[i]]} {_NAME_B[b[i]]}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        disp = f"{base} {sf}" if k == 0 else f"{base} {k + 1} {sf}"
        names.append(disp)
        slug = (base if k == 0 else f"{base}{k + 1}").lower().replace(" ", "")
        tld = {
            "US": "com",
            "CA": "ca",
            "GB": "co.uk",
            "AU": "com.au",
            "NZ": "co.nz",
            "JP": "jp",
            "SG": "sg",
        }.get(c, c.lower())
        emails.append(f"ap@{slug}.{tld}")
        cities.append(_CITY[c][city_i[i] % len(_CITY[c])])
        subdivs.append(_SUBDIV[c][city_i[i] % len(_SUBDIV[c])])
        phones.append(f"({_AREA[city_i[i]]}) {str(phone[i])[:3]}-{str(phone[i])[3:]}")

    return dict(
        source=source,
        archetype=arche,
        segment=seg,
        region=region,
        country=country.astype(str),
        currency=cur,
        terms=terms,
        auto=auto,
        batch=batch,
        c_start=c_start,
        c_end=c_end,
        default_day=default_day,
        created=created,
        mu=mu,
        sd=sd,
        season_extra=season_extra,
        drift=drift,
        med_cents=med_cents,
        volume=volume,
        tax_ppm=tax_ppm,
        name=np.array(names, dtype=object),
        email=np.array(emails, dtype=object),
        city=np.array(cities, dtype=object),
        subdiv=np.array(subdivs, dtype=object),
        phone=np.array(phones, dtype=object),
        street=street,
        postal=postal,
    )


def _link_customers(C: dict, cfg: GeneratorConfig) -> np.ndarray:
    """The same business billed in both systems: `cfg.linked_customers` Stripe customers take the
    name and e-mail of distinct QuickBooks customers. Drawn from a generator of their own, so the
    main stream (and every invoice, payment and open balance) is the same as without links.
    Returns, per customer, the index of its linked customer or -1."""
    linked = np.full(len(C["source"]), -1, dtype=np.int64)
    qbo, stripe = np.flatnonzero(C["source"] == QBO), np.flatnonzero(C["source"] == STRIPE)
    k = min(cfg.linked_customers, len(qbo), len(stripe))
    if k == 0:
        return linked
    link_rng = np.random.default_rng([cfg.seed, 0x11C])
    q = np.sort(link_rng.choice(qbo, size=k, replace=False))
    s = link_rng.choice(stripe, size=k, replace=False)
    C["name"][s] = C["name"][q]
    C["email"][s] = C["email"][q]
    linked[q], linked[s] = s, q
    return linked


def simulate(cfg: GeneratorConfig) -> Sim:
    rng = np.random.default_rng(cfg.seed)
    end = day_of(cfg.end_date)
    n_days = cfg.history_days
    start = end - n_days + 1
    days = np.arange(start, end + 1, dtype=np.int64)

    fx = _hold_over_weekends(_fx_table(rng, n_days), start)
    C = _make_customers(rng, cfg, start, end)
    C["linked_cust"] = _link_customers(C, cfg)
    nc = cfg.customers

    # ---------------------------------------------------------------- invoices
    N = cfg.invoices
    counts = rng.multinomial(N, C["volume"] / C["volume"].sum())
    cust = np.repeat(np.arange(nc), counts)

    _, mon, _ = civil(days)
    wd = weekday(days)
    w = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.12, 0.05])[wd]
    w = w * np.array([0.95, 1.0, 1.1, 1.0, 1.0, 1.05, 0.9, 0.85, 1.1, 1.05, 1.05, 0.9])[mon - 1]
    nxt_mon = civil(days + 3)[1]
    w = w * np.where(nxt_mon != mon, 1.3, 1.0)
    w = w * (1.0 + 0.25 * (days - start) / n_days)
    cum = np.r_[0.0, np.cumsum(w)]
    a = C["c_start"][cust] - start
    b = C["c_end"][cust] - start
    u = cum[a] + rng.random(N) * (cum[b + 1] - cum[a])
    di = np.clip(np.searchsorted(cum, u, side="right") - 1, a, b)
    inv_day = start + di

    order = np.lexsort((rng.random(N), cust, inv_day))
    cust = cust[order]
    inv_day = inv_day[order]
    src = C["source"][cust]
    seg = C["segment"][cust]
    arche = C["archetype"][cust]
    due = inv_day + C["terms"][cust]
    auto = C["auto"][cust]

    # amounts: lines with qty * unit price
    total_target = np.exp(rng.normal(np.log(C["med_cents"][cust]), 0.8))
    total_target = np.clip(total_target, 5_000, 50_000_000)
    n_lines = np.where(src == QBO, rng.integers(1, 5, N), rng.integers(1, 4, N))
    li_inv = np.repeat(np.arange(N), n_lines)
    li_no = _group_rank(li_inv)
    lw = rng.uniform(0.2, 1.0, len(li_inv))
    share = lw / np.bincount(li_inv, weights=lw, minlength=N)[li_inv]
    qty = rng.choice(np.array([1, 1, 1, 2, 3, 4, 5, 10, 12, 20]), size=len(li_inv))
    unit = np.maximum(np.round(total_target[li_inv] * share / qty / 100.0) * 100, 100).astype(
        np.int64
    )
    cents_unit = rng.random(len(li_inv)) < 0.3
    unit = unit + np.where(cents_unit, rng.integers(0, 100, len(li_inv)), 0)
    li_amt = unit * qty
    item = rng.integers(0, 12, len(li_inv))
    subtotal = np.bincount(li_inv, weights=li_amt, minlength=N).astype(np.int64)
    tax_ppm = C["tax_ppm"][cust]
    tax = (subtotal * tax_ppm + 500_000) // 1_000_000
    total = subtotal + tax

    cur = C["currency"][cust]
    rate = fx[cur, inv_day - start]

    # voids
    void = rng.random(N) < 0.01
    void_day = np.where(void, np.minimum(inv_day + rng.integers(0, 15, N), end), NEVER)

    # ---------------------------------------------------------------- payment behaviour
    t = (inv_day - start) / n_days
    late = C["mu"][cust] + rng.normal(0, 1, N) * C["sd"][cust]
    due_mon = civil(due)[1]
    late += np.where((arche == 3) & np.isin(due_mon, [6, 7, 8, 12]), C["season_extra"][cust], 0)
    late += np.where(arche == 4, C["drift"][cust] * t**1.5, 0)
    dd_c = C["default_day"][cust]
    frac_to_default = np.clip((inv_day - (dd_c - 180)) / 180.0, 0, 1)
    late += np.where(arche == 5, 25 * frac_to_default, 0)
    rel = np.log(total_target / C["med_cents"][cust])
    late += 6.0 * np.maximum(rel, 0)
    late += np.where(seg == 0, 3.0, 0.0)
    pay_day = due + np.round(late).astype(np.int64)
    pay_day = np.maximum(pay_day, inv_day)
    pwd = weekday(pay_day)
    pay_day += np.where(pwd == 5, 2, np.where(pwd == 6, 1, 0))
    bm = C["batch"][cust]
    pay_day += np.where(bm, (4 - weekday(pay_day)) % 7, 0)
    # card on file: charged on the invoice date; failure odds follow the latent behaviour and a
    # failed card is paid after retries / an updated card
    p_fail = np.array([0.03, 0.08, 0.30, 0.08, 0.05, 0.15])[arche]
    p_fail = p_fail + np.where(arche == 4, 0.45 * t**1.5, 0.0)
    p_fail = p_fail + np.where((arche == 3) & np.isin(civil(inv_day)[1], [6, 7, 8, 12]), 0.25, 0.0)
    retry = auto & (rng.random(N) < p_fail)
    auto_pay = inv_day + np.where(
        retry, np.maximum(np.round(late).astype(np.int64), rng.integers(3, 9, N)), 0
    )
    pay_day = np.where(auto, auto_pay, pay_day)

    # ---------------------------------------------------------------- credits
    has_cr = ~void & ~auto & (rng.random(N) < np.where(src == QBO, 0.03, 0.02))
    cr_day = inv_day + rng.integers(1, 21, N)
    cr_unapplied = (src == QBO) & (rng.random(N) < 0.12)
    cr_apply = np.where(src == QBO, cr_day + rng.integers(0, 5, N), cr_day)
    # Stripe pre-payment credit notes only while the invoice is still open
    has_cr &= (src == QBO) | (cr_day < pay_day)
    cr_amt = np.round(total * rng.uniform(0.05, 0.45, N)).astype(np.int64)
    cr_applied = has_cr & ~cr_unapplied
    pay_day = np.where(cr_applied, np.maximum(pay_day, cr_apply), pay_day)
    collectible = total - np.where(cr_applied, cr_amt, 0)

    # ---------------------------------------------------------------- payment parts
    k = np.ones(N, dtype=np.int64)
    part = ~auto & (rng.random(N) < 0.10)
    k[part] = rng.integers(2, 4, int(part.sum()))
    k[void] = 0
    p_inv = np.repeat(np.arange(N), k)
    P = len(p_inv)
    pu = rng.random(P)
    rank = _group_rank(p_inv)
    is_last = rank == (k[p_inv] - 1)
    pu[is_last] = 1.0
    o = np.lexsort((pu, p_inv))
    pu = pu[o]  # p_inv already sorted, so order within group is by pu
    span = pay_day[p_inv] - inv_day[p_inv]
    p_day = inv_day[p_inv] + np.floor(pu * span).astype(np.int64)
    pw = rng.uniform(0.3, 1.0, P)
    pshare = pw / np.bincount(p_inv, weights=pw, minlength=N)[p_inv]
    p_amt = np.floor(pshare * collectible[p_inv]).astype(np.int64)
    others = np.bincount(p_inv, weights=np.where(is_last, 0, p_amt), minlength=N).astype(np.int64)
    p_amt = np.where(is_last, collectible[p_inv] - others[p_inv], p_amt)
    keep = (p_day <= end) & (p_day < dd_c[p_inv])
    p_inv, p_day, p_amt, p_last = p_inv[keep], p_day[keep], p_amt[keep], is_last[keep]
    paid_sum = np.bincount(p_inv, weights=p_amt, minlength=N).astype(np.int64)
    n_kept = np.bincount(p_inv, minlength=N)
    fully_paid = (n_kept == k) & (k > 0)
    last_day = np.full(N, -1, dtype=np.int64)
    np.maximum.at(last_day, p_inv, p_day)
    paid_date = np.where(fully_paid, last_day, NEVER)
    # (paid_date is the last kept part; parts are date-ordered within an invoice)

    # credits that exist at end_date
    cr_exists = has_cr & (cr_day <= end)
    cr_applied_by_end = cr_exists & ~cr_unapplied & (cr_apply <= end)

    # Stripe: defaulters' old open invoices marked uncollectible
    mark = (src == STRIPE) & (arche == 5) & ~void & ~fully_paid
    mark_day = np.maximum(due + rng.integers(45, 90, N), dd_c + rng.integers(20, 60, N))
    mark &= (mark_day <= end) & (rng.random(N) < 0.7)
    mark_day = np.where(mark, mark_day, NEVER)

    status = np.where(
        void, "void", np.where(fully_paid, "paid", np.where(mark, "uncollectible", "open"))
    )

    # ---------------------------------------------------------------- QBO unapplied-only payments
    qcust = np.flatnonzero((C["source"] == QBO) & (counts > 0))
    n_un = int(round(0.004 * int((src == QBO).sum()))) if len(qcust) else 0
    if n_un:
        uc = rng.choice(qcust, n_un)
        ud = C["c_start"][uc] + np.floor(
            rng.random(n_un) * (np.minimum(C["c_end"][uc], end) - C["c_start"][uc] + 1)
        ).astype(np.int64)
        ua = (
            np.round(np.exp(rng.normal(np.log(C["med_cents"][uc] * 0.3), 0.6)) / 100).astype(
                np.int64
            )
            * 100
        )
        ua = np.maximum(ua, 1000)
        # these draws only keep the main stream's later draws unchanged: the stand-alone unapplied
        # payments (with the invoices they pay) are drawn from their own stream (qbo_unapplied)
        del uc, ud, ua

    # ---------------------------------------------------------------- Stripe drafts
    scust = np.flatnonzero((C["source"] == STRIPE) & (counts > 0))
    n_dr = max(1, int(round(0.002 * int((src == STRIPE).sum())))) if len(scust) else 0
    dc = rng.choice(scust, n_dr) if n_dr else np.zeros(0, dtype=np.int64)
    d_day = end - rng.integers(0, 7, n_dr)
    d_amt = (np.round(np.exp(rng.normal(np.log(C["med_cents"][dc]), 0.6)) / 100) * 100).astype(
        np.int64
    )
    d_amt = np.maximum(d_amt, 5000)
    drafts = pl.DataFrame({"cust": dc, "day": d_day, "amount": d_amt, "idx": np.arange(n_dr)})

    # ---------------------------------------------------------------- Stripe refunds and disputes
    ps = src[p_inv] == STRIPE
    pidx = np.arange(len(p_inv))
    ref = ps & (rng.random(len(p_inv)) < 0.01)
    r_day = p_day + rng.integers(1, 31, len(p_inv))
    ref &= r_day <= end
    r_full = rng.random(len(p_inv)) < 0.4
    r_amt = np.where(
        r_full, p_amt, np.maximum(np.round(p_amt * rng.uniform(0.1, 0.6, len(p_inv))), 1)
    ).astype(np.int64)
    refunds = pl.DataFrame({"part": pidx[ref], "day": r_day[ref], "amount": r_amt[ref]})
    dsp = ps & ~ref & (rng.random(len(p_inv)) < 0.005)
    s_day = p_day + rng.integers(3, 61, len(p_inv))
    dsp &= s_day <= end
    d_u = rng.random(len(p_inv))
    d_reason = rng.choice(
        np.array(
            ["fraudulent", "product_not_received", "general", "duplicate", "product_unacceptable"]
        ),
        len(p_inv),
    )
    age = end - s_day
    d_status = np.where(
        age < 21,
        np.where(d_u < 0.6, "needs_response", "under_review"),
        np.where(d_u < 0.45, "won", "lost"),
    )
    disputes = pl.DataFrame(
        {
            "part": pidx[dsp],
            "day": s_day[dsp],
            "amount": p_amt[dsp],
            "reason": d_reason[dsp],
            "status": d_status[dsp],
        }
    )

    customers = pl.DataFrame(
        {
            "cust": np.arange(nc),
            "source": C["source"],
            "archetype": ARCHETYPES[C["archetype"]],
            "segment": SEGMENTS[C["segment"]],
            "region": REGIONS[C["region"]],
            "country": C["country"],
            "currency": C["currency"],
            "terms": C["terms"],
            "auto": C["auto"],
            "batch": C["batch"],
            "created": C["created"],
            "default_day": C["default_day"],
            "n_invoices": counts,
            "name": C["name"].astype(str),
            "email": C["email"].astype(str),
            "city": C["city"].astype(str),
            "subdiv": C["subdiv"].astype(str),
            "phone": C["phone"].astype(str),
            "street": C["street"],
            "postal": C["postal"],
            "tax_ppm": C["tax_ppm"],
            "linked_cust": C["linked_cust"],
        }
    )
    invoices = pl.DataFrame(
        {
            "inv": np.arange(N),
            "cust": cust,
            "source": src,
            "day": inv_day,
            "due": due,
            "subtotal": subtotal,
            "tax": tax,
            "total": total,
            "currency": cur,
            "rate": rate,
            "void": void,
            "void_day": void_day,
            "auto": auto,
            "n_lines": n_lines,
            "has_credit": cr_exists,
            "credit_day": cr_day,
            "credit_apply_day": cr_apply,
            "credit_amount": cr_amt,
            "credit_unapplied": cr_unapplied,
            "credit_applied_by_end": cr_applied_by_end,
            "paid_sum": paid_sum,
            "n_parts": n_kept,
            "fully_paid": fully_paid,
            "paid_date": paid_date,
            "mark_day": mark_day,
            "status": status,
            "retry": retry,
            "tax_ppm": tax_ppm,
        }
    )
    lines = pl.DataFrame(
        {
            "inv": li_inv,
            "line_no": li_no + 1,
            "qty": qty,
            "unit": unit,
            "amount": li_amt,
            "item": item,
        }
    )
    applications = pl.DataFrame(
        {
            "part": np.arange(len(p_inv)),
            "inv": p_inv,
            "day": p_day,
            "amount": p_amt,
            "is_last": p_last,
        }
    )
    open_qbo = invoices.filter((pl.col("source") == QBO) & (pl.col("status") == "open")).select(
        "inv",
        "cust",
        "day",
        "currency",
        open_minor=pl.col("total")
        - pl.col("paid_sum")
        - pl.when(pl.col("credit_applied_by_end")).then(pl.col("credit_amount")).otherwise(0),
    ).filter(pl.col("open_minor") > 0)
    unapplied, unapplied_truth = qbo_unapplied.build(
        cfg.seed,
        open_qbo,
        customers.filter((pl.col("source") == QBO) & (pl.col("n_invoices") > 0)).select(
            "cust", c_start=pl.Series(C["c_start"][qcust]), c_end=pl.Series(C["c_end"][qcust]),
            med_cents=pl.Series(C["med_cents"][qcust]),
        ),
        int((src == QBO).sum()),
        end,
    )
    credits = invoices.filter(pl.col("has_credit")).select(
        "inv",
        "cust",
        "source",
        "currency",
        "credit_day",
        "credit_apply_day",
        "credit_amount",
        "credit_unapplied",
        "credit_applied_by_end",
    )
    return Sim(
        cfg=cfg,
        start_day=start,
        end_day=end,
        customers=customers,
        invoices=invoices,
        lines=lines,
        applications=applications,
        credits=credits,
        fx=fx,
        unapplied=unapplied,
        unapplied_truth=unapplied_truth,
        drafts=drafts,
        refunds=refunds,
        disputes=disputes,
    )
