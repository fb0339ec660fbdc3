"""Payment models: P(late), P(> 30 days late) and days-to-pay p10/p50/p90. Every modelling choice
is made on a validation slice carved from the training period; the test period is never read.

Protocol (`train(rows, cutoff)`; `rows` = what was known at the cut-off, backtest.training_rows):
1. Complete outcomes only (`outcome_known`): a row is used for a target only when its outcome was
   settled before the cut-off: "late" once the due date has passed, "> 30 days late" 30 days
   after it, days to pay when paid and due at least `settle_days` (90) before the cut-off.
   Otherwise the most recent rows are a censored sample (only the invoices paid quickly), which
   taught the days-to-pay model that "recent invoices pay sooner than the customer's median".
2. Validation, classifiers: per target, the latest-issued `val_fraction` (20%) of those rows; the
   rest is the fit slice. Candidates are fitted on the fit slice and compared on the validation slice.
   Validation, days to pay (`timing_folds`): `timing_folds` (3) rolling blocks of 20% of the rows
   each, the last one the latest-issued; each is a small backtest inside the training period: its
   fold cut-off is its first issue date c, and the candidates are fitted only on what the real
   protocol would have known at c (issued before the block, due >= `settle_days` before c, paid
   before c), so the fitted model is months older than the invoices it predicts, as in production.
   (One 20% slice fitted on every row just before it chose residual trees that lost to the
   customer's median at 3 of 12 rolling backtest cut-offs.) A fold whose fit part has fewer rows
   than its block (`min_fold_fit_ratio`) is dropped: early in a short history its model is fitted
   on a few hundred cold-start rows, whose rolling medians come from the first, quickly settled
   invoices, and judging candidates on it made the median ship at every early cut-off.
3. Classifiers (ALL_FEATURES; the days-to-pay model also reads TIMING_EXTRA_FEATURES, the
   trend slope): a regularised logistic regression on the customer-history aggregates
   (LOGISTIC_FEATURES, standardised; C in {0.1, 1}) and a HistGradientBoosting model on every
   feature; highest validation AUC wins, but boosting must beat the logistic model by AUC_MARGIN
   (if simpler is as good, simpler ships). The winner is refitted on all rows of step 1 and
   Platt-calibrated (sigmoid, monotone: keeps the ranking) on out-of-fold scores of 3 shuffled,
   seeded folds of those training rows (see _refit_calibrated). The calibration method is fixed,
   not tuned.
4. Days to pay (`_choose_timing`): the naive baseline "customer_median" (p50 = the customer's
   rolling median, band from the residual quantiles), "history_residual" (median + residual
   quantiles) and quantile HistGradientBoosting of the residual around the rolling median, for
   every tree size in TIMING_TREE_GRID and every blend weight of the predicted residual in
   TIMING_BLEND_GRID (p50 = median + w x residual), scored by MAE of p50 on every fold
   (`choose_on_folds`): a candidate must be no worse than the customer median on *every* fold,
   and the lowest mean MAE among those wins (ties: the simpler), so the baseline ships when
   nothing beats it in every regime of the training period. Trees use the quantile (pinball)
   loss: p50 minimises absolute error, which is what the MAE scores.
5. Interval: the winner's p10/p90 are widened or narrowed by split-conformal calibration on the
   pooled validation blocks (each predicted by the winner as fitted on its fold; baselines with
   their final offsets), each end apart (`conformal_widening`), so that ~10% of payments fall
   below p10 and ~10% above p90; the offsets are kept for the refit.
6. The winner is refitted on every row of step 1 (trees); baselines' offsets are the residual
   quantiles of every row of step 1.
Above `max_train_rows` the rows are a seeded uniform sample. Everything is seeded: the same rows
and seed give the same model and scores. `validation` in the artefact records every candidate's
validation score and the choice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .features import ALL_FEATURES, CATEGORICAL_FEATURES, NUMERIC_FEATURES, TIMING_EXTRA_FEATURES, TIMING_FEATURES

LOGISTIC_FEATURES = [
    "has_history", "hist_count_log", "late_share", "late30_share", "recent_late_share", "mean_days_late",
    "recent_mean_days_late", "median20_days_late", "last_days_late", "trend_days_late", "season_excess_days_late",
    "overdue_count", "open_count", "amount_rel_log", "terms_days",
]
QUANTILES = (0.1, 0.5, 0.9)
TARGETS = ("late", "late30")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    val_fraction: float = 0.2
    max_iter: int = 200
    learning_rate: float = 0.08
    min_rows: int = 50
    #: training rows above this are a seeded uniform sample (every period and customer kept in
    #: proportion): the features are per-customer aggregates over the full ledger, so more rows
    #: add little; at 1M invoices (794k training rows) fitting every row took 1,130 s on 2 cores
    max_train_rows: int = 150_000
    timing_learning_rate: float = 0.05
    timing_min_samples_leaf: int = 100
    #: days-to-pay rows must be due at least this many days before the cut-off (outcome_known)
    settle_days: int = 90
    #: rolling validation folds for the days-to-pay choice (timing_folds), val_fraction each
    timing_folds: int = 3
    #: a days-to-pay fold counts only when its fit part has at least this many rows per row of its
    #: block: a fold fitted on fewer rows than it is judged on measures a cold-start model that is
    #: never shipped (chosen on tuning histories, README "Risk scores and the backtest")
    min_fold_fit_ratio: float = 1.0


@dataclass
class PaymentModel:
    """A trained model set plus what is needed to reproduce and explain it."""

    classifiers: dict[str, Any]
    classifier_kind: dict[str, str]
    timing: dict[str, Any]
    timing_kind: str
    vocab: dict[str, list[str]]
    reference: dict[str, float]
    data_cutoff: date
    seed: int
    n_train: int
    validation: dict[str, Any] = field(default_factory=dict)
    trained_at: str = ""

    @property
    def version(self) -> str:
        kinds = "-".join([self.classifier_kind["late"], self.classifier_kind["late30"], self.timing_kind])
        # the feature list too: the same data under code with other features is another model
        key = f"{self.data_cutoff}|{self.seed}|{self.n_train}|{kinds}|{','.join(TIMING_FEATURES)}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        return f"pm-{self.data_cutoff.isoformat()}-{digest}"

    def metadata(self) -> dict[str, Any]:
        return {
            "model_version": self.version, "trained_at": self.trained_at,
            "data_cutoff": self.data_cutoff.isoformat(), "seed": self.seed, "n_train": self.n_train,
            "features": ALL_FEATURES, "logistic_features": LOGISTIC_FEATURES, "timing_features": TIMING_FEATURES,
            "classifier_kind": self.classifier_kind, "timing_kind": self.timing_kind,
            "validation": self.validation,
        }

    # ------------------------------------------------------------------ prediction
    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        return feature_matrix(frame, self.vocab)

    def predict(self, frame: pl.DataFrame) -> pl.DataFrame:
        """p_late, p_late_30, days_to_pay_p10/p50/p90 per row of a feature frame (same order)."""
        with threadpool_limits(ml_threads()):
            return self._predict(self.matrix(frame))

    def _predict(self, X: np.ndarray) -> pl.DataFrame:
        p_late = self.classifiers["late"].predict_proba(X[:, :N_CLASSIFIER])[:, 1]
        p_late30 = self.classifiers["late30"].predict_proba(X[:, :N_CLASSIFIER])[:, 1]
        # P(> 30 days late) cannot exceed P(late)
        p_late30 = np.minimum(p_late30, p_late)
        q = predict_quantiles(self.timing, self.timing_kind, X)
        return pl.DataFrame({
            "p_late": p_late, "p_late_30": p_late30,
            "days_to_pay_p10": q[:, 0], "days_to_pay_p50": q[:, 1], "days_to_pay_p90": q[:, 2],
        })

    def save(self, folder: Path) -> Path:
        import joblib

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.version}.joblib"
        joblib.dump(self, path)
        (folder / f"{self.version}.json").write_text(json.dumps(self.metadata(), indent=2, default=str))
        (folder / "latest.json").write_text(json.dumps({"model_version": self.version, "path": path.name}))
        return path

    @staticmethod
    def load(folder: Path, version: str | None = None) -> PaymentModel:
        import joblib

        if version is None:
            version = json.loads((folder / "latest.json").read_text())["model_version"]
        return joblib.load(folder / f"{version}.joblib")


# ---------------------------------------------------------------------- design matrix
def fit_vocab(frame: pl.DataFrame) -> dict[str, list[str]]:
    """Category levels seen in training (sorted, so the codes are deterministic)."""
    return {c: sorted(v for v in frame[c].unique().to_list() if v is not None) for c in CATEGORICAL_FEATURES}


def feature_matrix(frame: pl.DataFrame, vocab: dict[str, list[str]]) -> np.ndarray:
    """NUMERIC_FEATURES, CATEGORICAL_FEATURES as codes (unknown/missing → NaN), then
    TIMING_EXTRA_FEATURES: the classifiers read the first N_CLASSIFIER columns (ALL_FEATURES), the
    days-to-pay model every column (TIMING_FEATURES)."""
    cols = [frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in NUMERIC_FEATURES]
    for c in CATEGORICAL_FEATURES:
        mapping = {v: float(i) for i, v in enumerate(vocab[c][:250])}
        cols.append(frame[c].replace_strict(mapping, default=None, return_dtype=pl.Float64)
                    .fill_null(np.nan).to_numpy())
    cols.extend(frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in TIMING_EXTRA_FEATURES)
    return np.column_stack(cols).astype(np.float64)


def _col(name: str) -> int:
    return TIMING_FEATURES.index(name)


N_CLASSIFIER = len(ALL_FEATURES)


LOGISTIC_IDX = [_col(c) for c in LOGISTIC_FEATURES]
CATEGORICAL_MASK = np.array([c in CATEGORICAL_FEATURES for c in ALL_FEATURES])
TIMING_CATEGORICAL_MASK = np.array([c in CATEGORICAL_FEATURES for c in TIMING_FEATURES])


def _logistic(C: float, seed: int) -> Any:
    """Standardised L2 logistic regression on the history aggregates (LOGISTIC_FEATURES) only."""
    select = ColumnTransformer([("history", StandardScaler(), LOGISTIC_IDX)], remainder="drop")
    return make_pipeline(select, LogisticRegression(C=C, max_iter=2000, random_state=seed))


def _hgb_classifier(cfg: TrainConfig) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=cfg.max_iter, learning_rate=cfg.learning_rate, l2_regularization=1.0, min_samples_leaf=40,
        categorical_features=CATEGORICAL_MASK, early_stopping=False, random_state=cfg.seed,
    )


def _candidates(cfg: TrainConfig) -> dict[str, Any]:
    return {
        "logistic_c0.1": _logistic(0.1, cfg.seed),
        "logistic_c1": _logistic(1.0, cfg.seed),
        "hgb": _hgb_classifier(cfg),
    }


#: a more complex candidate must beat the simplest one by this much validation AUC to be chosen
AUC_MARGIN = 0.002


def _choose(scores: dict[str, dict[str, float]]) -> str:
    """Highest validation AUC; the logistic model unless boosting is better by AUC_MARGIN."""
    best = max(scores, key=lambda k: (scores[k]["auc"], k))
    logistic = [k for k in scores if k.startswith("logistic")]
    if best not in logistic and logistic:
        best_lr = max(logistic, key=lambda k: (scores[k]["auc"], k))
        if scores[best]["auc"] - scores[best_lr]["auc"] < AUC_MARGIN:
            return best_lr
    return best


def _refit_calibrated(model: Any, X: np.ndarray, y: np.ndarray, seed: int) -> Any:
    """The chosen model refitted on every training row, Platt-calibrated (sigmoid: monotone, so it
    keeps the ranking) on out-of-fold scores of 3 *shuffled*, seeded, stratified folds.

    The folds must be shuffled: training rows are stored grouped (by customer / time), and with
    unshuffled folds each fold's model scored rows unlike the ones it was fitted on (out-of-fold
    mean logits of +7.5, +1.4 and -5.8 on the second generated history against +2.4 for the full
    fit), so the sigmoid learned on them flattened every probability towards the base rate: Brier
    0.203 against 0.111 uncalibrated and 0.107 with shuffled folds. Every row is from before the
    cut-off, so shuffling inside the training period reads nothing from the test period."""
    if np.bincount(y, minlength=2).min() < 3:
        return model.fit(X, y)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    return CalibratedClassifierCV(model, method="sigmoid", cv=folds, ensemble=False).fit(X, y)


# ---------------------------------------------------------------------- timing
#: residual-tree sizes the timing model chooses from on the validation slice (iterations, leaves);
#: every one is small and heavily shrunk (learning rate 0.05, >= 100 rows a leaf)
TIMING_TREE_GRID: tuple[tuple[int, int], ...] = ((50, 7), (100, 15), (200, 31))
#: weights of the predicted residual added to the customer's rolling median (1 = the trees alone,
#: 0 = the median itself); chosen on the validation slice
TIMING_BLEND_GRID: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)


def _hgb_quantile(cfg: TrainConfig, q: float, size: tuple[int, int]) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        loss="quantile", quantile=q, max_iter=size[0], learning_rate=cfg.timing_learning_rate,
        max_leaf_nodes=size[1], min_samples_leaf=cfg.timing_min_samples_leaf,
        l2_regularization=1.0, categorical_features=TIMING_CATEGORICAL_MASK, early_stopping=False,
        random_state=cfg.seed,
    )


MEDIAN_DTP_IDX = _col("median20_days_to_pay")


def predict_quantiles(timing: dict[str, Any], kind: str, X: np.ndarray) -> np.ndarray:
    """Days-to-pay p10/p50/p90: the customer's rolling median plus the predicted residual quantiles
    (hgb_quantile: p50 residual scaled by the chosen blend weight) or fixed offsets (history_residual,
    customer_median); sorted, widened by the validation-calibrated offsets, clipped at 0."""
    base = X[:, [MEDIAN_DTP_IDX]]
    if kind == "hgb_quantile":
        resid = np.column_stack([m.predict(X) for m in timing["models"]])
        resid[:, 1] *= timing.get("blend", 1.0)
        raw = base + resid
    else:  # history_residual, customer_median
        raw = base + np.asarray(timing["offsets"])[None, :]
    raw = np.sort(raw, axis=1)  # quantile models fitted apart can cross
    lo, hi = timing.get("widen", (0.0, 0.0))
    raw[:, 0] = np.minimum(raw[:, 0] - lo, raw[:, 1])
    raw[:, 2] = np.maximum(raw[:, 2] + hi, raw[:, 1])
    return np.clip(raw, 0.0, None)


def _median_offsets(resid: np.ndarray) -> list[float]:
    """The customer's rolling median itself as p50 (the naive baseline, offset 0), with the 10th /
    90th percentiles of the residuals around it as the band."""
    lo, hi = np.quantile(resid, [QUANTILES[0], QUANTILES[2]]) if len(resid) else (0.0, 0.0)
    return [float(lo), 0.0, float(hi)]


def conformal_widening(q: np.ndarray, y: np.ndarray, level: float = 0.8) -> tuple[float, float]:
    """Split-conformal calibration of the [p10, p90] interval on held-out rows, one side at a time:
    each end is moved so that it misses (1 - level) / 2 = a of the rows (10% below p10, 10% above
    p90 for level 0.8) by the finite-sample conformal quantile, the ceil((n + 1)(1 - a))-th smallest
    of the scores q10 - y (lower) and y - q90 (upper), the largest when n is too small. Returns
    (lower widening, upper widening); either may be negative (the band is narrowed when it covered
    too much). Two-sided, so a skewed error
    distribution (late payments run long) gets a longer upper tail, not a symmetric band."""
    n = len(y)
    if n == 0:
        return 0.0, 0.0
    alpha = (1.0 - level) / 2.0
    rank = min(n, int(np.ceil((n + 1) * (1.0 - alpha) - 1e-9)))  # 1-based; 1e-9: float noise
    lower = float(np.sort(q[:, 0] - y)[rank - 1])
    upper = float(np.sort(y - q[:, 2])[rank - 1])
    return lower, upper


# ---------------------------------------------------------------------- training
def outcome_known(rows: pl.DataFrame, target: str, cutoff: date, settle_days: int) -> np.ndarray:
    """Rows whose `target` outcome was fully determined before `cutoff`, so that recent rows are not
    a censored sample (only the invoices that happened to be paid quickly):
    - late: due date before cutoff - 1 day (by then an unpaid invoice is late, a paid one known);
    - late30: due date + 30 days before cutoff - 1 day;
    - days_to_pay: paid, and due at least `settle_days` before the cut-off (payments later than
      that are collection cases; leaving every recent invoice in made the tree learn "recent
      invoices pay sooner than the median" from the fast payers alone)."""
    due = rows["due_date"]
    last = cutoff - timedelta(days=1)
    if target == "late":
        ok = due < last
    elif target == "late30":
        ok = due < last - timedelta(days=30)
    else:
        ok = due <= cutoff - timedelta(days=settle_days)
    return (ok & rows[target].is_not_null()).fill_null(False).to_numpy()


def _split(frame: pl.DataFrame, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Fit / validation row indices: the validation slice is the latest-issued `val_fraction` of
    the rows (ties by invoice key), all from before the cut-off."""
    order = np.lexsort((frame["invoice_key"].to_numpy(), frame["invoice_date"].to_physical().to_numpy()))
    n_val = max(1, int(round(len(order) * cfg.val_fraction)))
    return np.sort(order[:-n_val]), np.sort(order[-n_val:])


def ml_threads() -> int:
    """Threads for scikit-learn's OpenMP loops (AR_ML_THREADS, default 1: on a busy machine more
    threads spin and run many times slower)."""
    return max(1, int(os.environ.get("AR_ML_THREADS") or 1))


def train(train_rows: pl.DataFrame, data_cutoff: date, cfg: TrainConfig | None = None,
          trained_at: str = "") -> PaymentModel:
    """Train on a feature frame joined to its labels (late, late30, days_to_pay; null = unknown)
    of invoices issued before `data_cutoff` (backtest.training_rows)."""
    with threadpool_limits(ml_threads()):
        return _train(train_rows, data_cutoff, cfg or TrainConfig(), trained_at)


def _train(train_rows: pl.DataFrame, data_cutoff: date, cfg: TrainConfig, trained_at: str) -> PaymentModel:
    if train_rows.height < cfg.min_rows:
        raise ValueError(f"only {train_rows.height} settled invoices before {data_cutoff}: "
                         f"need at least {cfg.min_rows} to train")
    n_available = train_rows.height
    if n_available > cfg.max_train_rows:
        keep = train_rows.with_row_index("_i").sample(n=cfg.max_train_rows, seed=cfg.seed)["_i"].sort()
        train_rows = train_rows[keep.to_numpy()]
    vocab = fit_vocab(train_rows)
    X_all = feature_matrix(train_rows, vocab)
    validation: dict[str, Any] = {"n_available": n_available, "n_used": train_rows.height}

    classifiers, kinds = {}, {}
    for target in TARGETS:
        known = outcome_known(train_rows, target, data_cutoff, cfg.settle_days)
        if known.sum() < cfg.min_rows:  # too little complete history: every row with a label
            known = train_rows[target].is_not_null().to_numpy()
        rows, X = train_rows.filter(known), X_all[known][:, :N_CLASSIFIER]
        fit_idx, val_idx = _split(rows, cfg)
        validation[f"{target}_n_fit_val"] = [len(fit_idx), len(val_idx)]
        y = rows[target].cast(pl.Int8).to_numpy()
        scores = {}
        for name, model in _candidates(cfg).items():
            if len(np.unique(y[fit_idx])) < 2 or len(np.unique(y[val_idx])) < 2:
                continue
            model.fit(X[fit_idx], y[fit_idx])
            p = model.predict_proba(X[val_idx])[:, 1]
            scores[name] = {"auc": float(roc_auc_score(y[val_idx], p)),
                            "log_loss": float(log_loss(y[val_idx], p, labels=[0, 1]))}
        if not scores:  # one class only (or no validation positives): the training rate
            classifiers[target], kinds[target] = _Constant(float(y.mean())), "constant"
            continue
        best = _choose(scores)
        classifiers[target] = _refit_calibrated(_candidates(cfg)[best], X, y, cfg.seed)
        kinds[target] = best
        validation[f"{target}_val"] = scores

    known = outcome_known(train_rows, "days_to_pay", data_cutoff, cfg.settle_days)
    if known.sum() < cfg.min_rows:
        known = train_rows["days_to_pay"].is_not_null().to_numpy()
    rows, X = train_rows.filter(known), X_all[known]
    if rows.height < cfg.min_rows:
        raise ValueError(f"only {rows.height} invoices paid before {data_cutoff}: need at least {cfg.min_rows}")
    folds = timing_folds(rows, cfg)
    validation["days_to_pay_n_fit_val"] = [len(folds[-1][0]), len(folds[-1][1])]
    y = rows["days_to_pay"].to_numpy().astype(np.float64)
    timing_kind, timing, choice = _choose_timing(X, y, folds, cfg)
    validation.update(choice)
    if timing_kind == "hgb_quantile":  # refit on every timing row; keep the blend and widening
        resid = y - X[:, MEDIAN_DTP_IDX]
        timing["models"] = [_hgb_quantile(cfg, q, timing["size"]).fit(X, resid) for q in QUANTILES]
    # baselines: _choose_timing already set their offsets from every timing row

    reference = {c: (float(np.nanmedian(X_all[:, i])) if np.isfinite(X_all[:, i]).any() else float("nan"))
                 for i, c in enumerate(TIMING_FEATURES)}
    return PaymentModel(classifiers=classifiers, classifier_kind=kinds, timing=timing,
                        timing_kind=timing_kind, vocab=vocab, reference=reference, data_cutoff=data_cutoff,
                        seed=cfg.seed, n_train=n_available, validation=validation, trained_at=trained_at)


def timing_folds(frame: pl.DataFrame, cfg: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rolling-origin folds for the days-to-pay choice, oldest first, each a small backtest inside
    the training period. Rows ordered by issue date (ties by invoice key) are cut into
    `timing_folds` consecutive validation blocks of `val_fraction` of the rows each, ending with
    the latest-issued rows. A block's fold cut-off is its first issue date c, and the fold fits on
    what the real protocol would have known at c: rows issued before the block, due at least
    `settle_days` before c (outcome_known) and paid before c. So, as in the backtest, the fitted
    model is months older than the invoices it predicts (a validation block right after its fit
    rows let the trees learn each customer's latest residuals and flattered them). Folds whose fit
    part has fewer than `min_rows` rows are dropped; when none is left, the last block with every
    earlier row (`_split`)."""
    order = np.lexsort((frame["invoice_key"].to_numpy(), frame["invoice_date"].to_physical().to_numpy()))
    n = len(order)
    n_val = max(1, int(round(n * cfg.val_fraction)))
    issued = frame["invoice_date"].to_numpy()
    due, paid = frame["due_date"].to_numpy(), frame["paid_date"].to_numpy()
    folds = []
    for k in range(cfg.timing_folds - 1, -1, -1):  # k blocks after this one
        stop = n - k * n_val
        start = stop - n_val
        if start < 1:
            continue
        c = issued[order[start]]
        before = order[:start]
        known = (due[before] <= c - np.timedelta64(cfg.settle_days, "D")) & (paid[before] < c)
        if known.sum() >= max(cfg.min_rows, cfg.min_fold_fit_ratio * (stop - start)):
            folds.append((np.sort(before[known]), np.sort(order[start:stop])))
    return folds or [_split(frame, cfg)]


def choose_on_folds(fold_maes: dict[str, list[float]], baseline: str = "customer_median") -> str:
    """The days-to-pay choice from per-fold validation MAEs (candidates in order, simplest first):
    a candidate is eligible only if its MAE is no worse than the baseline's on *every* fold (a
    model that loses to the customer's own median in one regime of the training period is not
    trusted in the next one); among the eligible ones (the baseline always is) the lowest mean
    MAE over the folds wins, ties to the simpler (earlier) one."""
    base = fold_maes[baseline]
    order = list(fold_maes)
    eligible = [k for k in order
                if k == baseline or all(m <= b + 1e-9 for m, b in zip(fold_maes[k], base, strict=True))]
    return min(eligible, key=lambda k: (round(float(np.mean(fold_maes[k])), 9), order.index(k)))


def _choose_timing(X: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                   cfg: TrainConfig) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Every days-to-pay choice, made on rolling validation folds inside the training period only
    (timing_folds; on each, candidates are fitted on the rows issued before the block): the family
    (customer median / median + residual quantiles / residual trees), the residual-tree size
    (TIMING_TREE_GRID) and the blend weight of the predicted residual (TIMING_BLEND_GRID), by
    choose_on_folds (no worse than the customer median on any fold, then lowest mean MAE of p50);
    then the p10/p90 widening of the winner (conformal_widening on the pooled validation blocks,
    each predicted by the winner fitted on that fold). Returns (kind, timing without fitted models
    for the refit, validation record)."""
    resid = y - X[:, MEDIAN_DTP_IDX]
    fold_maes: dict[str, list[float]] = {}
    cands: dict[str, tuple[str, dict[str, Any]]] = {}
    fold_timings: dict[str, list[dict[str, Any]]] = {}

    def add(name: str, kind: str, timing: dict[str, Any], mae: float) -> None:
        cands.setdefault(name, (kind, {k: v for k, v in timing.items() if k not in ("models", "offsets")}))
        fold_maes.setdefault(name, []).append(mae)
        fold_timings.setdefault(name, []).append(timing)

    medians: list[dict[tuple[int, int], Any]] = []
    for fit_idx, val_idx in folds:
        Xf, Xv, yv = X[fit_idx], X[val_idx], y[val_idx]
        for name, timing in (("customer_median", {"offsets": _median_offsets(resid[fit_idx])}),
                             ("history_residual", {"offsets": np.quantile(resid[fit_idx], QUANTILES).tolist()})):
            add(name, name, timing, float(np.mean(np.abs(predict_quantiles(timing, name, Xv)[:, 1] - yv))))
        med_val = Xv[:, MEDIAN_DTP_IDX]
        medians.append({})
        for size in TIMING_TREE_GRID:
            medians[-1][size] = _hgb_quantile(cfg, 0.5, size).fit(Xf, resid[fit_idx])
            p50 = medians[-1][size].predict(Xv)
            for w in TIMING_BLEND_GRID:
                add(f"hgb_quantile_{size[0]}x{size[1]}_w{w:g}", "hgb_quantile", {"size": size, "blend": w},
                    float(np.mean(np.abs(np.clip(med_val + w * p50, 0.0, None) - yv))))
    best = choose_on_folds(fold_maes)
    kind, timing = cands[best]
    # the winner as fitted on each fold, its predictions on that fold's block, pooled for the widening
    # baselines need no refit: their final band (residual quantiles of every row) is the one widened
    final: dict[str, Any] = {}
    if kind != "hgb_quantile":
        final["offsets"] = (_median_offsets(resid) if kind == "customer_median"
                            else np.quantile(resid, QUANTILES).tolist())
    timing = {**timing, **final}
    winners, ys = [], []
    for f, (fit_idx, val_idx) in enumerate(folds):
        t = {**fold_timings[best][f], **final}
        if kind == "hgb_quantile":
            lo, hi = (_hgb_quantile(cfg, q, t["size"]).fit(X[fit_idx], resid[fit_idx])
                      for q in (QUANTILES[0], QUANTILES[2]))
            t = {**t, "models": [lo, medians[f][t["size"]], hi]}
        winners.append(t)
        ys.append(y[val_idx])
    yv, Xv = np.concatenate(ys), [X[v] for _, v in folds]
    widen = conformal_widening(np.vstack([predict_quantiles(t, kind, x) for t, x in zip(winners, Xv, strict=True)]), yv)
    timing = {**timing, "widen": widen}
    q = np.vstack([predict_quantiles({**t, "widen": widen}, kind, x) for t, x in zip(winners, Xv, strict=True)])
    maes = {k: float(np.mean(v)) for k, v in fold_maes.items()}
    record = {"days_to_pay_val_mae": maes, "days_to_pay_val_mae_folds": fold_maes,
              "days_to_pay_val_folds": [[len(f), len(v)] for f, v in folds],
              "days_to_pay_choice": best, "days_to_pay_widen": list(widen),
              "days_to_pay_val_coverage_80": float(np.mean((yv >= q[:, 0]) & (yv <= q[:, 2])))}
    return kind, timing, record


class _Constant:
    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([np.full(len(X), 1 - self.p), np.full(len(X), self.p)])


# ---------------------------------------------------------------------- drivers
#: feature groups a collector can read, with the sentence that describes each for one invoice
DRIVER_GROUPS: dict[str, list[str]] = {
    "late_history": ["late_share", "recent_late_share", "late30_share"],
    "days_late": ["mean_days_late", "recent_mean_days_late", "median20_days_late", "last_days_late",
                  "mean_days_to_pay", "recent_mean_days_to_pay", "median20_days_to_pay"],
    "trend": ["trend_days_late"],
    "season": ["season_excess_days_late"],
    "overdue": ["overdue_count", "overdue_amount_log"],
    "open": ["open_count", "open_amount_log"],
    "history_depth": ["has_history", "hist_count_log", "prev_invoice_count_log"],
    "amount": ["amount_log", "amount_rel_log"],
    "terms": ["terms_days"],
    "disputes_credits": ["disputes_before", "credit_memos_before", "write_offs_before"],
    "reminders": ["reminders_before"],
    "customer": ["segment", "region", "currency", "source", "is_home_currency"],
    "calendar": ["issue_dow", "issue_dom"],
}


def _money(x: float) -> str:
    return f"{x:,.0f}"


def describe(group: str, row: dict[str, Any]) -> str:
    """The collector sentence for a driver group, from one feature row."""
    has = row["has_history"] > 0
    if group == "late_history":
        if not has:
            return "no payment history yet"
        return f"paid {row['recent_late_count']:.0f} of its last {row['recent_count']:.0f} invoices late"
    if group == "days_late":
        if not has:
            return "no payment history yet"
        d = round(row["median20_days_late"])
        return f"usually pays {abs(d)} days {'late' if d > 0 else 'early'}" if d else "usually pays on the due date"
    if group == "trend":
        d = row["trend_days_late"]
        return f"recently paying {abs(d):.0f} days {'later' if d > 0 else 'sooner'} than its average"
    if group == "season":
        d, month = row["season_excess_days_late"], row["due_date"].strftime("%B")
        return (f"pays {abs(d):.0f} days {'later' if d > 0 else 'sooner'} than usual on invoices due in {month}"
                if round(d) else f"no seasonal pattern for {month}")
    if group == "overdue":
        n = row["overdue_count"]
        return f"{n:.0f} invoices already overdue ({_money(row['overdue_amount'])})" if n else "nothing overdue"
    if group == "open":
        return f"{row['open_count']:.0f} open invoices ({_money(row['open_amount'])})"
    if group == "history_depth":
        return f"{row['hist_count']:.0f} invoices paid so far" if has else "new customer: no paid invoices yet"
    if group == "amount":
        ratio = float(np.exp(row["amount_rel_log"]))
        return f"invoice is {ratio:.1f}x its usual size" if row["prev_invoice_count"] else "first invoice"
    if group == "terms":
        return f"{row['terms_days']:.0f}-day terms"
    if group == "disputes_credits":
        return (f"{row['disputes_before']:.0f} disputes, {row['credit_memos_before']:.0f} credit memos, "
                f"{row['write_offs_before']:.0f} write-offs before this invoice")
    if group == "reminders":
        n = row["reminders_before"]
        return f"{n:.0f} reminders sent to this customer before this invoice" if n else "no reminders sent before"
    if group == "customer":
        return f"{row.get('segment') or 'unknown'} segment, {row.get('region') or 'unknown'} region, {row['currency']}"
    return f"issued on day {row['issue_dom']:.0f} of the month"


def explain(model: PaymentModel, frame: pl.DataFrame, target: str = "late", top: int = 3) -> list[str]:
    """Top drivers per row: for each feature group, how much the probability drops (or rises) when
    the group is set to the training median (occlusion); the `top` largest effects, in words, with
    their signed effect in percentage points."""
    if frame.height == 0:
        return []
    with threadpool_limits(ml_threads()):
        E, names = _occlusion(model, frame, target)
    rows = frame.to_dicts()
    out = []
    for i, row in enumerate(rows):
        order = np.argsort(-np.abs(E[i]), kind="stable")[:top]
        parts = [f"{describe(names[j], row)} ({E[i, j] * 100:+.0f} pts)" for j in order if abs(E[i, j]) >= 0.005]
        out.append("; ".join(parts) if parts else "no single factor stands out")
    return out


def _occlusion(model: PaymentModel, frame: pl.DataFrame, target: str) -> tuple[np.ndarray, list[str]]:
    clf = model.classifiers[target]
    X = model.matrix(frame)[:, :N_CLASSIFIER]
    base = clf.predict_proba(X)[:, 1]
    effects = {}
    for group, cols in DRIVER_GROUPS.items():
        Xr = X.copy()
        for c in cols:
            Xr[:, _col(c)] = model.reference[c]
        effects[group] = base - clf.predict_proba(Xr)[:, 1]
    names = list(effects)
    return np.column_stack([effects[g] for g in names]), names
