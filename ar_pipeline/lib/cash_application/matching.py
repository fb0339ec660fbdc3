"""Match unapplied money (bank credits, unapplied payments) to open invoices.

Pure functions over polars frames; no database, no clock. For each payment the matcher gathers
evidence (invoice numbers in the reference text, exactly or with one typo or without their prefix;
the payer's name against customer names; the amount against one invoice or a small combination of
one customer's open invoices, allowing bank fees, short/over-payments and FX) and keeps one best
suggestion with a confidence and a sentence saying why. Suggestions at or above
`auto_apply_min_confidence` are flagged `auto_apply`; everything else goes to review.

Bank lines that are Stripe payouts (see `payouts`) are matched to the payout, never to invoices.

Never auto-applied: a payment that two different sets of open invoices would explain equally well
(e.g. two open invoices with the same amount and no reference), a payment whose invoice another
auto-applied payment also claims, or one matched on the amount alone.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field
from datetime import date

import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from .config import CashApplicationConfig
from .payouts import is_payout_line, match_payout_lines

PAYMENT_COLUMNS = {
    "payment_key": pl.String,
    "payment_source": pl.String,
    "payment_date": pl.Date,
    "amount": pl.Float64,
    "currency": pl.String,
    "reference": pl.String,
    "payer_name": pl.String,
    "customer_id": pl.String,
}
INVOICE_COLUMNS = {
    "invoice_key": pl.String,
    "invoice_number": pl.String,
    "customer_id": pl.String,
    "customer_name": pl.String,
    "currency": pl.String,
    "open_amount": pl.Float64,
    "exchange_rate": pl.Float64,
    "due_date": pl.Date,
}
SUGGESTION_SCHEMA = {
    "payment_key": pl.String,
    "payment_source": pl.String,
    "payment_date": pl.Date,
    "payer_name": pl.String,
    "reference": pl.String,
    "payment_currency": pl.String,
    "payment_amount": pl.Float64,
    "match_pattern": pl.String,
    "confidence": pl.Float64,
    "auto_apply": pl.Boolean,
    "explanation": pl.String,
    "customer_id": pl.String,
    "customer_name": pl.String,
    "invoice_key": pl.String,
    "invoice_number": pl.String,
    "invoice_currency": pl.String,
    "invoice_open_amount": pl.Float64,
    "suggested_applied_amount": pl.Float64,
    "difference_amount": pl.Float64,
    "invoice_count": pl.Int64,
    "payout_id": pl.String,
}

# The invoice columns of a suggestion that names no invoice.
NO_INVOICE = {
    "invoice_key": None,
    "invoice_number": None,
    "invoice_currency": None,
    "invoice_open_amount": None,
    "suggested_applied_amount": None,
}

LEGAL_SUFFIXES = {
    "inc",
    "incorporated",
    "llc",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "sarl",
    "bv",
    "nv",
    "pty",
    "pte",
    "kk",
    "oy",
    "ab",
    "as",
    "srl",
    "spa",
    "lp",
    "llp",
    "the",
}
BANK_NOISE = {"payment", "from", "pmt", "ach", "wire", "trf", "transfer", "credit", "sepa", "ref"}
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-/][A-Za-z0-9]+)*")
CENT = 0.005
# a pair of a customer's many open invoices adding up to the payment is auto-applied only when a
# pair hitting that amount by chance is this unlikely (expected chance pairs, see Matcher.chance_pairs)
CHANCE_MAX = 0.01


def normalise_name(name: str | None) -> str:
    """Lower case, punctuation dropped, legal suffixes and bank words removed: 'ACME WIDGETS, INC.'
    and 'Acme Widgets Inc' both become 'acme widgets'."""
    if not name:
        return ""
    words = re.sub(r"[^0-9a-z ]+", " ", name.lower().replace("&", " and ")).split()
    kept = [w for w in words if w not in LEGAL_SUFFIXES and w not in BANK_NOISE]
    return " ".join(kept)


def normalise_number(number: str | None) -> str:
    """Invoice numbers compared without case, spaces, '#' or dashes."""
    return re.sub(r"[^0-9A-Z]", "", (number or "").upper())


def reference_tokens(reference: str | None) -> list[str]:
    """Candidate invoice numbers in a reference text: word-like runs with at least one digit,
    normalised; compound tokens ('ABC-0012') also contribute their parts."""
    out: list[str] = []
    for tok in _TOKEN.findall(reference or ""):
        parts = [tok, *re.split(r"[-/]", tok)] if ("-" in tok or "/" in tok) else [tok]
        for part in parts:
            n = normalise_number(part)
            if any(ch.isdigit() for ch in n) and len(n) >= 3 and n not in out:
                out.append(n)
    return out


@dataclass(frozen=True)
class Invoice:
    key: str
    number: str
    norm: str
    suffix: str
    customer_id: str
    customer_name: str
    currency: str
    open_amount: float
    exchange_rate: float | None
    due_date: date | None


@dataclass
class Suggestion:
    pattern: str
    confidence: float
    explanation: str
    invoices: list[Invoice] = field(default_factory=list)
    applied: list[float] = field(default_factory=list)
    difference: float = 0.0
    customer_id: str | None = None
    customer_name: str | None = None


@dataclass(frozen=True)
class AmountFit:
    kind: str  # exact | fee | over | fx | partial | none
    difference: float  # payment minus what the invoices need, in the payment currency


def _fmt(x: float) -> str:
    return f"{x:,.2f}"


class Matcher:
    """Indexes open invoices once, then matches payments one at a time."""

    def __init__(self, invoices: pl.DataFrame, cfg: CashApplicationConfig) -> None:
        self.cfg = cfg
        rows = invoices.select(list(INVOICE_COLUMNS)).cast(INVOICE_COLUMNS).to_dicts()
        self.invoices: list[Invoice] = []
        for r in rows:
            num = r["invoice_number"] or ""
            norm = normalise_number(num)
            suffix = normalise_number(re.split(r"[-/]", num)[-1]) if re.search(r"[-/]", num) else ""
            self.invoices.append(
                Invoice(
                    r["invoice_key"],
                    num,
                    norm,
                    suffix,
                    r["customer_id"] or "",
                    r["customer_name"] or "",
                    (r["currency"] or "").upper(),
                    float(r["open_amount"] or 0.0),
                    r["exchange_rate"],
                    r["due_date"],
                )
            )
        self.by_number: dict[str, list[Invoice]] = {}
        self.by_customer: dict[str, list[Invoice]] = {}
        for inv in self.invoices:
            if inv.norm:
                self.by_number.setdefault(inv.norm, []).append(inv)
            self.by_customer.setdefault(inv.customer_id, []).append(inv)
        for lst in self.by_customer.values():
            lst.sort(key=lambda i: (i.due_date or date.max, i.key))
        self.numbers = list(self.by_number)
        names: dict[str, str] = {}
        for inv in self.invoices:
            names.setdefault(inv.customer_id, inv.customer_name)
        self.customer_names = names
        self.customer_ids = list(names)
        self.customer_norms = [normalise_name(names[c]) for c in self.customer_ids]
        self._sum_cache: dict[tuple, tuple[list[int], dict[int, list[int]], dict[int, list[tuple[int, int]]]]] = {}
        self._sorted_sums: dict[tuple, list[int]] = {}

    # ------------------------------------------------------------------ evidence
    def customer_scores(self, payer_name: str | None) -> list[tuple[str, float]]:
        """Customers whose normalised name is like the payer's, best first (score 0-100). A bank
        field truncated to a prefix of the name counts as a match."""
        norm = normalise_name(payer_name)
        if not norm:
            return []
        out = []
        for cid, cn in zip(self.customer_ids, self.customer_norms, strict=True):
            if not cn:
                continue
            score = fuzz.ratio(norm, cn)
            if len(norm) >= 12 and cn.startswith(norm) and norm != cn:
                score = max(score, 90.0)
            if score >= self.cfg.name_match_min_score:
                out.append((cid, score))
        out.sort(key=lambda t: (-t[1], t[0]))
        return out

    def referenced(self, reference: str | None, customers: set[str]) -> dict[str, tuple[Invoice, str]]:
        """Invoices named in the reference: key -> (invoice, how) with how = exact | typo | no_prefix.
        Typos (edit distance 1) and prefix-less numbers count only for the payer's customers when the
        payer is known, and only for numbers of at least `typo_min_length` characters."""
        found: dict[str, tuple[Invoice, str]] = {}
        tokens = reference_tokens(reference)
        for tok in tokens:
            for inv in self.by_number.get(tok, []):
                found.setdefault(inv.key, (inv, "exact"))
        exact_norms = {inv.norm for inv, how in found.values()}
        pool = [i for c in sorted(customers) for i in self.by_customer.get(c, [])] if customers else None
        for tok in tokens:
            if any(tok in e for e in exact_norms if len(tok) < len(e) - 2):
                continue  # a part of an invoice number already found
            # even a number found exactly is checked for one-typo neighbours among the payer's
            # invoices: a typo can turn one invoice number into another one
            if pool is not None:
                by_suffix = [inv for inv in pool if inv.suffix and tok == inv.suffix and tok not in exact_norms]
                for inv in by_suffix:
                    found.setdefault(inv.key, (inv, "no_prefix"))
                if by_suffix or len(tok) < self.cfg.typo_min_length:
                    continue
                for inv in pool:
                    if inv.key in found:
                        continue
                    if Levenshtein.distance(tok, inv.norm, score_cutoff=1) <= 1 or (
                        inv.suffix
                        and len(inv.suffix) >= self.cfg.typo_min_length
                        and Levenshtein.distance(tok, inv.suffix, score_cutoff=1) <= 1
                    ):
                        found[inv.key] = (inv, "typo")
            elif len(tok) >= self.cfg.typo_min_length and tok not in exact_norms:
                for num, _score, _i in process.extract(
                    tok, self.numbers, scorer=Levenshtein.distance, score_cutoff=1, limit=None
                ):
                    for inv in self.by_number[num]:
                        found.setdefault(inv.key, (inv, "typo"))
        return found

    def needed(self, invs: list[Invoice], currency: str) -> float | None:
        """What the invoices' open amounts come to in the payment currency (None if no rate)."""
        total = 0.0
        for inv in invs:
            if inv.currency == currency:
                total += inv.open_amount
            elif currency == self.cfg.home_currency and inv.exchange_rate:
                total += inv.open_amount * inv.exchange_rate
            else:
                return None
        return total

    def fit(self, invs: list[Invoice], amount: float, currency: str, allow_partial: bool) -> AmountFit:
        need = self.needed(invs, currency)
        if need is None:
            return AmountFit("none", 0.0)
        diff = amount - need
        foreign = any(i.currency != currency for i in invs)
        if foreign:
            return (
                AmountFit("fx", diff)
                if abs(diff) <= self.cfg.fx_tolerance_pct * need + CENT
                else AmountFit("none", diff)
            )
        if abs(diff) <= CENT:
            return AmountFit("exact", 0.0)
        tol = max(self.cfg.fee_tolerance_abs, 0.0) if need else 0.0
        tol = min(tol, self.cfg.fee_tolerance_pct * need) if self.cfg.fee_tolerance_pct else tol
        if -tol - CENT <= diff < 0:
            return AmountFit("fee", diff)
        if 0 < diff <= tol + CENT:
            return AmountFit("over", diff)
        if allow_partial and len(invs) == 1 and 0 < amount < need and amount >= self.cfg.min_partial_share * need:
            return AmountFit("partial", diff)
        return AmountFit("none", diff)

    def exact_subsets(self, pool: list[Invoice], amount: float, currency: str) -> list[list[Invoice]]:
        """Sets of up to `max_subset_invoices` invoices of the pool whose open amounts add up to the
        payment exactly (`fit` kind 'exact': same currency, within half a cent); at most 3 returned
        (enough to tell unique from ambiguous), fewer invoices first, then oldest first (the pool's
        order). No invoice is used twice.

        A hash search on whole cents, not brute force, so it covers every invoice of the pool: one
        invoice by dict lookup, two by complement lookup, three and four by pair sums (meet in the
        middle). Pair sums cover only the pool's first `max_subset_pair_candidates` invoices (the
        table grows with the square of the pool); see `exact_search_is_exhaustive`."""
        pool = [i for i in pool if i.currency == currency]
        if not pool:
            return []
        vals, by_val, pairs = self._sum_index(pool, currency)
        target = round(amount * 100)
        window = (target - 1, target, target + 1)  # candidates in cents; `fit` decides what is exact
        kmax = min(self.cfg.max_subset_invoices, len(pool))
        out: list[list[Invoice]] = []

        def fits(idx: tuple[int, ...]) -> bool:
            return self.fit([pool[n] for n in idx], amount, currency, allow_partial=False).kind == "exact"

        def take(found: list[tuple[int, ...]]) -> bool:
            out.extend([pool[n] for n in idx] for idx in sorted(set(found))[: 3 - len(out)])
            return len(out) >= 3

        # one invoice
        if take([(n,) for w in window for n in by_val.get(w, []) if fits((n,))]):
            return out
        if kmax >= 2:  # two: the complement of each invoice among later invoices
            found: list[tuple[int, ...]] = []
            for i, v in enumerate(vals):
                for w in window:
                    lst = by_val.get(w - v, [])
                    found += [c for j in lst[bisect.bisect_right(lst, i) :][:3] if fits(c := (i, j))]
                if len(found) >= 3 - len(out):
                    break  # the oldest first invoice with partners settles the order
            if take(found):
                return out
        m = min(len(pool), self.cfg.max_subset_pair_candidates)
        if kmax >= 3:  # three: one invoice plus a pair of later invoices
            found = []
            for i in range(m):
                for w in window:
                    lst = pairs.get(w - vals[i])
                    if lst:
                        found += [c for p in lst[bisect.bisect_left(lst, (i + 1,)) :][:3] if fits(c := (i, *p))]
                if len(found) >= 3 - len(out):
                    break
            if take(found):
                return out
        if kmax >= 4:  # four: a pair plus a pair of later invoices
            found = []
            for i in range(m):
                for j in range(i + 1, m):
                    s = vals[i] + vals[j]
                    for w in window:
                        lst = pairs.get(w - s)
                        if lst:
                            found += [
                                c for p in lst[bisect.bisect_left(lst, (j + 1,)) :][:3] if fits(c := (i, j, *p))
                            ]
                if len(found) >= 3 - len(out):
                    break
            take(found)
        return out

    def _sum_index(
        self, pool: list[Invoice], currency: str
    ) -> tuple[list[int], dict[int, list[int]], dict[int, list[tuple[int, int]]]]:
        """Open amounts of the pool in cents, positions by amount, and pairs (i < j, among the first
        `max_subset_pair_candidates`) by the sum of their amounts, each list in ascending order.
        Built once per pool (a customer's open invoices do not change while matching)."""
        key = (currency, tuple(i.key for i in pool))
        hit = self._sum_cache.get(key)
        if hit is not None:
            return hit
        vals = [round(i.open_amount * 100) for i in pool]
        by_val: dict[int, list[int]] = {}
        for n, v in enumerate(vals):
            by_val.setdefault(v, []).append(n)
        pairs: dict[int, list[tuple[int, int]]] = {}
        if self.cfg.max_subset_invoices >= 2:
            m = min(len(pool), self.cfg.max_subset_pair_candidates)
            for i in range(m):
                vi = vals[i]
                for j in range(i + 1, m):
                    pairs.setdefault(vi + vals[j], []).append((i, j))
        self._sum_cache[key] = (vals, by_val, pairs)
        return vals, by_val, pairs

    def chance_pairs(self, pool: list[Invoice], amount: float, currency: str) -> float:
        """Expected number of pairs of the pool (same currency) whose sum hits `amount` to the cent
        by chance: the density of pair sums per cent within 10% of the amount (counted on the pair
        table, scaled up to the whole pool when the table covers only its oldest invoices)."""
        pool = [i for i in pool if i.currency == currency]
        n = len(pool)
        if n < 2:
            return 0.0
        _vals, _by_val, pairs = self._sum_index(pool, currency)
        key = (currency, tuple(i.key for i in pool))
        sums = self._sorted_sums.get(key)
        if sums is None:
            sums = self._sorted_sums[key] = sorted(v for v, lst in pairs.items() for _ in lst)
        if not sums:
            return float("inf")  # no pair table (max_subset_invoices 1): cannot tell
        target = round(amount * 100)
        w = max(round(abs(target) * 0.1), 100)
        near = bisect.bisect_right(sums, target + w) - bisect.bisect_left(sums, target - w)
        m = min(n, self.cfg.max_subset_pair_candidates)
        return near / (2 * w + 1) * (n * (n - 1)) / (m * (m - 1))

    def exact_search_is_exhaustive(self, pool: list[Invoice], currency: str) -> bool:
        """Whether `exact_subsets` saw every combination of the pool (pair sums cover it all)."""
        n = sum(i.currency == currency for i in pool)
        return self.cfg.max_subset_invoices <= 2 or n <= self.cfg.max_subset_pair_candidates

    def tolerance_subsets(
        self, pool: list[Invoice], amount: float, currency: str, kinds: tuple[str, ...] = ("fee", "over", "fx")
    ) -> list[list[Invoice]]:
        """Combinations (up to `max_subset_invoices`) of the pool's first `max_subset_candidates`
        invoices whose amount fits with a tolerance (`kinds`), by brute force; at most 3 returned."""
        out: list[list[Invoice]] = []
        pool = [i for i in pool[: self.cfg.max_subset_candidates] if self.needed([i], currency) is not None]
        for k in range(1, min(self.cfg.max_subset_invoices, len(pool)) + 1):
            for combo in itertools.combinations(pool, k):
                if self.fit(list(combo), amount, currency, allow_partial=False).kind in kinds:
                    out.append(list(combo))
                    if len(out) >= 3:
                        return out
        return out

    # ------------------------------------------------------------------ one payment
    def match(
        self,
        amount: float,
        currency: str,
        reference: str | None,
        payer_name: str | None,
        customer_id: str | None = None,
    ) -> Suggestion | None:
        currency = (currency or self.cfg.home_currency).upper()
        if customer_id:
            scores = [(customer_id, 100.0)]
        else:
            scores = self.customer_scores(payer_name)
        # the payer counts as identified when one customer is clearly ahead of the next
        top = scores[0] if scores else None
        name_unique = bool(top) and (len(scores) == 1 or scores[1][1] <= top[1] - 5)
        name_ids = {c for c, s in scores if top and s >= top[1] - 5}
        refs = self.referenced(reference, name_ids)

        if refs:
            s = self._from_references(refs, amount, currency, scores, name_ids)
            if s is not None:
                return s
        return self._from_amounts(amount, currency, top if name_unique else None, scores, bool(refs))

    def _name_phrase(self, cid: str, scores: list[tuple[str, float]]) -> tuple[bool, str]:
        s = dict(scores).get(cid)
        if s is None:
            return False, "the payer name does not match the customer"
        if s >= 100:
            return True, "the payer is the customer"
        return True, f"the payer name matches the customer ({s:.0f}/100)"

    def _from_references(self, refs, amount, currency, scores, name_ids) -> Suggestion | None:
        by_cust: dict[str, list[tuple[Invoice, str]]] = {}
        for inv, how in refs.values():
            by_cust.setdefault(inv.customer_id, []).append((inv, how))
        # prefer the payer's customer, then the customer with most exact references
        order = sorted(by_cust, key=lambda c: (c not in name_ids, -sum(h == "exact" for _, h in by_cust[c]), c))
        cands: list[tuple[float, Suggestion, frozenset[str]]] = []
        for cid in order:
            items = sorted(by_cust[cid], key=lambda t: (t[1] != "exact", t[0].key))[: self.cfg.max_subset_candidates]
            pool = [i for i, _ in items]
            hows = {i.key: h for i, h in items}
            named, name_txt = self._name_phrase(cid, scores)
            # all referenced invoices of this customer, then smaller combinations of them (bounded)
            n_exact = sum(h == "exact" for h in hows.values())
            tries = [pool] + [
                list(c)
                for k in range(1, min(len(pool) - 1, self.cfg.max_subset_invoices) + 1)
                for c in itertools.combinations(pool, k)
            ][:500]
            best: tuple[float, list[Invoice], AmountFit] | None = None
            seen_conf: list[tuple[float, frozenset[str]]] = []
            for invs in tries:
                f = self.fit(invs, amount, currency, allow_partial=True)
                if f.kind == "none":
                    continue
                conf = {"exact": 0.99, "fee": 0.95, "over": 0.93, "fx": 0.93, "partial": 0.9}[f.kind]
                if not all(hows[i.key] == "exact" for i in invs):
                    conf -= 0.04
                if not named:
                    conf -= 0.09
                if sum(hows[i.key] == "exact" for i in invs) < n_exact:
                    conf -= 0.03  # some numbers named exactly are left out
                seen_conf.append((conf, frozenset(i.key for i in invs)))
                if best is None or conf > best[0]:
                    best = (conf, invs, f)
            if best is None:
                continue
            conf, invs, f = best
            rivals = [c for c, k in seen_conf if k != frozenset(i.key for i in invs) and c >= conf - 0.02]
            sug = self._suggest(invs, hows, f, amount, currency, name_txt, cid)
            sug.confidence = conf
            if rivals:
                sug.confidence = min(conf, 0.6)
                sug.pattern = "ambiguous_reference"
                sug.explanation += " Another combination of the invoices named fits about as well; review."
            cands.append((sug.confidence, sug, frozenset(i.key for i in invs)))
        if not cands:
            # referenced but no amount fits: point at the references for review
            cid = order[0]
            invs = [i for i, _ in by_cust[cid]]
            need = self.needed(invs, currency)
            named, name_txt = self._name_phrase(cid, scores)
            nums = ", ".join(i.number for i in invs)
            txt = (
                f"Reference names invoice(s) {nums} but the payment of {_fmt(amount)} {currency} does not fit "
                f"their open amount{'' if need is None else ' of ' + _fmt(need) + ' ' + currency}; {name_txt}. "
                "Check with the customer before applying."
            )
            return Suggestion(
                "reference_amount_mismatch",
                0.5 if named else 0.4,
                txt,
                invs,
                self._alloc(invs, amount, currency),
                amount - (need or 0.0),
                cid,
                self.customer_names.get(cid),
            )
        cands.sort(key=lambda t: -t[0])
        best = cands[0]
        if len(cands) > 1 and cands[1][0] >= best[0] - 0.02 and cands[1][2] != best[2]:
            s = best[1]
            s.confidence = min(s.confidence, 0.6)
            s.pattern = "ambiguous_reference"
            s.explanation += " However, invoices of another customer named in the reference fit as well; review."
            return s
        return best[1]

    def _suggest(self, invs, hows, f: AmountFit, amount, currency, name_txt, cid) -> Suggestion:
        nums = ", ".join(
            f"{i.number}"
            + ("" if hows.get(i.key) == "exact" else f" (as {hows.get(i.key, 'amount').replace('_', ' ')})")
            for i in invs
        )
        pattern = (
            ("reference" if len(invs) == 1 else "reference_multi")
            + ("" if all(hows.get(i.key) == "exact" for i in invs) else "_fuzzy")
            + ("" if f.kind == "exact" else f"_{f.kind}")
        )
        amount_txt = {
            "exact": f"the amount {_fmt(amount)} {currency} equals the open amount",
            "fee": f"the payment is {_fmt(-f.difference)} {currency} short of the open amount (bank fee or short-pay; "
            "write off or chase the difference)",
            "over": f"the payment is {_fmt(f.difference)} {currency} more than the open amount "
            "(leave the excess as credit)",
            "fx": f"the payment in {currency} fits the open amount converted at the invoice's rate "
            f"(difference {_fmt(f.difference)} {currency}, an exchange difference)",
            "partial": f"the payment of {_fmt(amount)} {currency} is a partial payment; "
            f"{_fmt(-f.difference)} {currency} "
            "stays open",
        }[f.kind]
        txt = f"Reference names invoice {nums}; {amount_txt}; {name_txt}."
        return Suggestion(
            pattern,
            0.0,
            txt,
            list(invs),
            self._alloc(invs, amount, currency),
            f.difference,
            cid,
            self.customer_names.get(cid),
        )

    def _alloc(self, invs: list[Invoice], amount: float, currency: str) -> list[float]:
        """Amount applied to each invoice, oldest first, in the payment currency."""
        left = amount
        out = []
        for i in invs:
            need = self.needed([i], currency) or 0.0
            take = min(need, max(left, 0.0))
            out.append(round(take, 2))
            left -= take
        return out

    def _from_amounts(self, amount, currency, top, scores, had_refs: bool) -> Suggestion | None:
        if top is not None:
            cid, score = top
            named, name_txt = self._name_phrase(cid, scores)
            pool_all = self.by_customer.get(cid, [])
            n_open = sum(i.currency == currency for i in pool_all)
            few = n_open <= self.cfg.max_subset_candidates
            # every open invoice of the customer (hash search), so unique vs ambiguous is judged
            # over the whole open set; fewer invoices first, then oldest
            subsets = self.exact_subsets(pool_all, amount, currency)
            if not few and any(len(s) <= 2 for s in subsets):
                # among many open invoices some sum of 3-4 of them hits almost any amount by chance:
                # such sums do not compete with one invoice or a pair
                subsets = [s for s in subsets if len(s) <= 2]
            if (
                len(subsets) > 1
                and len(subsets[0]) == 1
                and len(subsets[1]) == 2
                and self.chance_pairs(pool_all, amount, currency) > CHANCE_MAX
            ):
                # one invoice fits and pairs hit this amount by chance this often: the pairs say nothing
                subsets = [s for s in subsets if len(s) == 1]
            if len(subsets) == 1:
                invs = subsets[0]
                multi = len(invs) > 1
                # a pair is trusted when a chance pair hitting this amount is unlikely; 3-4 invoices
                # only among few open invoices (and only when the search saw them all)
                trusted = (
                    self.exact_search_is_exhaustive(pool_all, currency)
                    if few
                    else len(invs) == 2 and self.chance_pairs(pool_all, amount, currency) <= CHANCE_MAX
                )
                conf = 0.93 if not multi else (0.92 if trusted else 0.85)
                if had_refs:
                    conf -= 0.05  # the reference named something else
                nums = ", ".join(i.number for i in invs)
                txt = f"No invoice number in the reference; {name_txt}, and " + (
                    f"invoice {nums} is the only open invoice of this customer for exactly {_fmt(amount)} {currency}."
                    if not multi
                    else f"invoices {nums} are the only combination of this customer's open invoices adding up to "
                    f"exactly {_fmt(amount)} {currency}."
                )
                return Suggestion(
                    "name_amount" if not multi else "name_subset_sum",
                    conf,
                    txt,
                    invs,
                    self._alloc(invs, amount, currency),
                    0.0,
                    cid,
                    self.customer_names.get(cid),
                )
            if len(subsets) > 1:
                opts = "; ".join(", ".join(i.number for i in s) for s in subsets)
                txt = (
                    f"No invoice number in the reference; {name_txt}, but more than one set of open invoices adds up "
                    f"to {_fmt(amount)} {currency} ({opts}). Ask the customer which to apply; do not guess."
                )
                invs = subsets[0]
                return Suggestion(
                    "ambiguous_amount",
                    0.4,
                    txt,
                    invs,
                    self._alloc(invs, amount, currency),
                    0.0,
                    cid,
                    self.customer_names.get(cid),
                )
            tol = self.tolerance_subsets(pool_all, amount, currency)
            if len(tol) == 1:
                invs = tol[0]
                f = self.fit(invs, amount, currency, allow_partial=False)
                nums = ", ".join(i.number for i in invs)
                txt = (
                    f"No invoice number in the reference; {name_txt}; invoice(s) {nums} come to within "
                    f"{_fmt(abs(f.difference))} {currency} of the payment "
                    f"({ {'fee': 'short/fee', 'over': 'overpaid'}.get(f.kind, f.kind) })."
                )
                return Suggestion(
                    f"name_amount_{f.kind}",
                    0.8,
                    txt,
                    invs,
                    self._alloc(invs, amount, currency),
                    f.difference,
                    cid,
                    self.customer_names.get(cid),
                )
            return Suggestion(
                "customer_only",
                0.2,
                f"No invoice number in the reference and no open invoice of this customer fits "
                f"{_fmt(amount)} {currency}; {name_txt}. Apply on account or ask for remittance.",
                [],
                [],
                0.0,
                cid,
                self.customer_names.get(cid),
            )
        # nobody identified: the amount alone (never auto-applied)
        same = [i for i in self.invoices if self.fit([i], amount, currency, allow_partial=False).kind == "exact"]
        if len(same) == 1:
            i = same[0]
            return Suggestion(
                "amount_only",
                0.5,
                f"Neither the reference nor the payer name identifies a customer; invoice {i.number} of "
                f"{i.customer_name} is the only open invoice for exactly {_fmt(amount)} {currency}. "
                "Confirm the payer before applying.",
                [i],
                [round(amount, 2)],
                0.0,
                i.customer_id,
                i.customer_name,
            )
        if len(same) > 1:
            return Suggestion(
                "ambiguous_amount",
                0.2,
                f"Neither the reference nor the payer name identifies a customer and {len(same)} open "
                f"invoices are for exactly {_fmt(amount)} {currency}; find the remittance advice.",
                [],
                [],
                0.0,
            )
        return None


def match_payments(
    payments: pl.DataFrame,
    invoices: pl.DataFrame,
    cfg: CashApplicationConfig,
    payouts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per (payment, suggested invoice); a payment with no invoice suggested gets one row with
    a null invoice and the reason. Bank lines that are Stripe payouts get one row naming the payout
    (`payouts`: payouts.PAYOUT_COLUMNS, e.g. marts.fct_stripe_payouts). Columns: SUGGESTION_SCHEMA."""
    m = Matcher(invoices, cfg)
    pays = payments.select(list(PAYMENT_COLUMNS)).cast(PAYMENT_COLUMNS).sort("payment_date", "payment_key").to_dicts()
    payout_lines = [
        p
        for p in pays
        if p["payment_source"] == "bank_statement" and is_payout_line(p["reference"], p["payer_name"], cfg)
    ]
    payout_matches = match_payout_lines(payout_lines, payouts if payouts is not None else pl.DataFrame(), cfg)
    results: list[tuple[dict, Suggestion | None]] = []
    for p in pays:
        if p["payment_key"] in payout_matches:
            continue
        s = m.match(float(p["amount"] or 0.0), p["currency"], p["reference"], p["payer_name"], p["customer_id"])
        if s is not None and s.invoices:
            s.confidence = round(max(0.0, min(1.0, s.confidence)), 2)
        results.append((p, s))
    # an invoice claimed by two confident payments beyond its open amount: neither is auto-applied
    claimed: dict[str, list[int]] = {}
    for n, (_p, s) in enumerate(results):
        if s is not None and s.confidence >= cfg.auto_apply_min_confidence:
            for inv in s.invoices:
                claimed.setdefault(inv.key, []).append(n)
    for key, idx in claimed.items():
        if len(idx) < 2:
            continue
        for n in idx:
            p, s = results[n]
            inv = next(i for i in s.invoices if i.key == key)
            total = sum(results[k][1].applied[[i.key for i in results[k][1].invoices].index(key)] for k in idx)
            if total > (m.needed([inv], p["currency"] or cfg.home_currency) or 0.0) + CENT:
                s.confidence = min(s.confidence, 0.6)
                s.pattern += "_conflict"
                s.explanation += f" Invoice {inv.number} is also claimed by another payment; review both."
    def payment_columns(p: dict) -> dict:
        return {
            "payment_key": p["payment_key"],
            "payment_source": p["payment_source"],
            "payment_date": p["payment_date"],
            "payer_name": p["payer_name"],
            "reference": p["reference"],
            "payment_currency": p["currency"],
            "payment_amount": p["amount"],
        }

    rows = []
    for p, s in results:
        base = payment_columns(p) | {"payout_id": None}
        if s is None:
            rows.append(
                base
                | {
                    "match_pattern": "no_match",
                    "confidence": 0.0,
                    "auto_apply": False,
                    "explanation": "No customer, invoice number or open amount matches this payment; "
                    "find the remittance "
                    "advice or return the money.",
                    "customer_id": None,
                    "customer_name": None,
                    **NO_INVOICE,
                    "difference_amount": None,
                    "invoice_count": 0,
                }
            )
            continue
        auto = bool(s.invoices) and s.confidence >= cfg.auto_apply_min_confidence
        common = base | {
            "match_pattern": s.pattern,
            "confidence": s.confidence,
            "auto_apply": auto,
            "explanation": s.explanation,
            "customer_id": s.customer_id,
            "customer_name": s.customer_name,
            "difference_amount": round(s.difference, 2),
            "invoice_count": len(s.invoices),
        }
        if not s.invoices:
            rows.append(common | NO_INVOICE)
        for inv, amt in zip(s.invoices, s.applied, strict=True):
            rows.append(
                common
                | {
                    "invoice_key": inv.key,
                    "invoice_number": inv.number,
                    "invoice_currency": inv.currency,
                    "invoice_open_amount": inv.open_amount,
                    "suggested_applied_amount": amt,
                }
            )
    for p in payout_lines:
        pm = payout_matches[p["payment_key"]]
        rows.append(
            payment_columns(p)
            | {
                "match_pattern": pm.pattern,
                "confidence": pm.confidence,
                "auto_apply": pm.payout_id is not None and pm.confidence >= cfg.auto_apply_min_confidence,
                "explanation": pm.explanation,
                "customer_id": None,
                "customer_name": None,
                **NO_INVOICE,
                "difference_amount": None,
                "invoice_count": 0,
                "payout_id": pm.payout_id,
            }
        )
    return (
        pl.DataFrame(rows, schema=SUGGESTION_SCHEMA, orient="row") if rows else pl.DataFrame(schema=SUGGESTION_SCHEMA)
    )
