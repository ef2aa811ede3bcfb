"""Offline evaluation: ``evaluate`` one model, ``compare`` several on one split, ``cross_validate``.

The protocol (the one every tastebud evaluation and benchmark uses): recommend top-``k`` for
every user with test items, excluding the user's training items, and average the metrics over
those users. Everything is computed on index arrays with the metric kernels; the model is
asked for recommendations in batches.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from tastebud import metrics as M
from tastebud.data import Interactions, split
from tastebud.models.base import Recommender

__all__ = ["Comparison", "Report", "compare", "cross_validate", "evaluate"]

DEFAULT_METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage")
_RANKING = set(M.RANKING_METRICS)
_BEYOND = {"coverage", "novelty", "gini", "personalization"}
_RATING = {"mae", "rmse", "mse"}


@dataclass
class Report:
    """What ``evaluate`` measured for one model.

    Attributes
    ----------
    model : str
        The model's class name (or the name given to ``compare``).
    k : int
        List length.
    means : dict[str, float]
        Metric means over evaluated users (ranking metrics) or the list-level value
        (coverage, novelty, gini, personalization) or the rating error (mae, rmse, mse).
    per_user : dict[str, ndarray]
        Per-user values of the ranking metrics (users with test items, in ``users`` order).
    users : ndarray
        Raw ids of the evaluated users.
    fit_seconds, recommend_seconds : float
        Wall-clock times (fit is NaN when the model came fitted).
    """

    model: str
    k: int
    means: dict[str, float]
    per_user: dict[str, np.ndarray] = field(repr=False)
    users: np.ndarray = field(repr=False)
    fit_seconds: float = float("nan")
    recommend_seconds: float = float("nan")

    def __getitem__(self, metric: str) -> float:
        return self.means[metric]

    def to_frame(self) -> Any:
        """One-row ``pandas.DataFrame`` of the means and times."""
        import pandas as pd

        row = {"model": self.model, **self.means}
        row.update(fit_s=self.fit_seconds, recommend_s=self.recommend_seconds)
        return pd.DataFrame([row]).set_index("model")

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{_label(name, self.k)}={value:.4f}" for name, value in self.means.items()
        )
        return (
            f"Report({self.model}: {parts}; users={self.users.size}, "
            f"fit={self.fit_seconds:.2f}s, recommend={self.recommend_seconds:.2f}s)"
        )


def _label(metric: str, k: int) -> str:
    return f"{metric}@{k}" if metric in _RANKING else metric


def _check_split(train: Interactions, test: Interactions) -> None:
    if not isinstance(train, Interactions) or not isinstance(test, Interactions):
        raise TypeError("train and test must be tastebud.Interactions (from tastebud.data.split).")
    if train.items != test.items:
        raise ValueError(
            "train and test must share one item vocabulary (use tastebud.data.split, which "
            "keeps the id space)."
        )


def _fitted(model: Recommender, train: Interactions, refit: bool) -> tuple[Recommender, float]:
    if refit or not model.is_fitted:
        t0 = time.perf_counter()
        model.fit(train)
        return model, time.perf_counter() - t0
    return model, float("nan")


def evaluate(
    model: Recommender,
    train: Interactions,
    test: Interactions,
    k: int = 10,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    refit: bool = False,
    batch_size: int = 4096,
    verbose: bool = True,
    name: str | None = None,
) -> Report:
    """Fit (if needed), recommend for every test user and measure.

    Parameters
    ----------
    model : Recommender
        Fitted on ``train`` already, or unfitted (then it is fitted here and timed).
    train, test : Interactions
        A split sharing one id space (``tastebud.data.split``). Training items are excluded
        from each user's list.
    k : int
        List length.
    metrics : sequence of str
        Any of precision, recall, f1, ndcg, map, mrr, hit_rate (per-user, averaged over users
        with test items), coverage, novelty, gini, personalization (list-level), and
        mae, rmse, mse for models with ``predict`` (errors on the test ratings). Novelty
        uses the add-one smoothed training popularity
        (``metrics.popularity_share(train.matrix, smoothing=1)``), so items without
        training interactions are the rarest rather than undefined.
    refit : bool
        Fit even if the model is already fitted.
    batch_size : int
        Users per ``recommend`` call.
    verbose : bool
        Show a progress bar.

    Returns
    -------
    Report
    """
    _check_split(train, test)
    unknown = [m for m in metrics if m not in _RANKING | _BEYOND | _RATING]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {unknown}; choose from {sorted(_RANKING | _BEYOND | _RATING)}."
        )
    # Checked before the (possibly long) fit: a bad k or unusable test weights would
    # otherwise only be reported after training.
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= test.n_items:
        raise ValueError(f"k must be an int in [1, {test.n_items}] (the catalogue); got {k!r}.")
    if set(metrics) & _RANKING and test.nnz and test.matrix.data.min() < 0:
        raise ValueError(
            "test has negative weights; ranking metrics use test weights as relevance gains, "
            "which must be >= 0. Evaluate on the positive interactions (e.g. "
            "test.binarize(threshold=...)) or on the signed ratings with metrics=('rmse', 'mae')."
        )
    model, fit_seconds = _fitted(model, train, refit)
    label = name or type(model).__name__
    means: dict[str, float] = {}
    per_user: dict[str, np.ndarray] = {}

    test_counts = test.user_counts()
    eval_users = np.flatnonzero(test_counts > 0)
    raw_users = test.users.ids(eval_users)
    model_users = model.users_.index(raw_users, missing="negative")
    if (model_users < 0).any():
        raise KeyError(
            f"{int((model_users < 0).sum())} test users are unknown to the model; evaluate "
            "new users with recommend_for instead."
        )
    if model.items_ != test.items:
        raise ValueError("the model was fitted on a different item vocabulary than test.")

    ranking = [m for m in metrics if m in _RANKING]
    beyond = [m for m in metrics if m in _BEYOND]
    t0 = time.perf_counter()
    recommended = np.empty((eval_users.size, k), dtype=np.int64)
    batches = range(0, eval_users.size if ranking or beyond else 0, batch_size)
    for start in tqdm(batches, desc=f"evaluate {label}", disable=not verbose, leave=False):
        stop = min(eval_users.size, start + batch_size)
        recommended[start:stop] = model.recommend_indices(model_users[start:stop], k)[0]
    recommend_seconds = time.perf_counter() - t0

    if ranking:
        relevant = test.matrix[eval_users]
        values = M.ranking_metrics(recommended, relevant, k=k, metrics=tuple(ranking))
        for metric in ranking:
            per_user[metric] = values[metric]
            means[metric] = float(np.nanmean(values[metric])) if eval_users.size else float("nan")
    n_items = test.n_items
    for metric in beyond:
        if metric == "coverage":
            means[metric] = float(M.catalog_coverage(recommended, n_items))
        elif metric == "gini":
            means[metric] = float(M.gini(recommended, n_items))
        elif metric == "personalization":
            means[metric] = float(M.personalization(recommended))
        elif metric == "novelty":
            # Add-one smoothing: items without training interactions (new items in a
            # temporal split) count as the rarest instead of making novelty undefined.
            popularity = M.popularity_share(train.matrix, smoothing=1.0)
            means[metric] = float(M.novelty(recommended, popularity))
    rating = [m for m in metrics if m in _RATING]
    if rating:
        if not hasattr(model, "predict"):
            raise TypeError(f"{label} has no predict(): rating metrics need a rating model.")
        arrays = test.to_arrays()
        predicted = model.predict(arrays["user"], arrays["item"])
        truth = arrays["weight"]
        for metric in rating:
            means[metric] = float(getattr(M, metric)(truth, predicted))
    return Report(label, k, means, per_user, raw_users, fit_seconds, recommend_seconds)


@dataclass
class Comparison:
    """Several models measured on one split, with paired significance tests.

    ``table`` maps model name -> Report. ``tests`` maps (model, metric) -> dict with the mean
    difference against the first model, the paired t-test p-value, the seeded paired
    randomization-test p-value, both Holm-corrected over the models compared for that metric,
    and ``significant`` at ``alpha`` (randomization test, Holm-corrected).
    """

    reports: dict[str, Report]
    tests: dict[tuple[str, str], dict[str, float | bool]]
    alpha: float

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.concat([r.to_frame() for r in self.reports.values()])

    def __repr__(self) -> str:
        reports = list(self.reports.values())
        if not reports:
            return "Comparison(empty)"
        k = reports[0].k
        metrics = list(reports[0].means)
        header = ["model", *(_label(m, k) for m in metrics), "fit_s", "rec_s"]
        rows = []
        for r in reports:
            cells = [r.model]
            for m in metrics:
                mark = ""
                test = self.tests.get((r.model, m))
                if test is not None and test["significant"]:
                    mark = "*"
                cells.append(f"{r.means[m]:.4f}{mark}")
            cells += [f"{r.fit_seconds:.2f}", f"{r.recommend_seconds:.2f}"]
            rows.append(cells)
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
        lines.append(
            f"* differs from {reports[0].model} (paired randomization test, Holm, "
            f"alpha={self.alpha})"
        )
        return "\n".join(lines)


def _holm(pvalues: Sequence[float]) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (p.size - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def paired_randomization_test(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 2000, random_state: int = 0
) -> float:
    """Two-sided p-value of a paired sign-flip randomization test on the mean difference."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0 or not np.any(diff):
        return 1.0
    rng = np.random.default_rng(random_state)
    observed = abs(diff.mean())
    count = 0
    for start in range(0, n_resamples, 256):
        size = min(256, n_resamples - start)
        signs = rng.integers(0, 2, size=(size, diff.size), dtype=np.int8) * 2 - 1
        count += int((np.abs(signs @ diff) / diff.size >= observed - 1e-15).sum())
    return (count + 1) / (n_resamples + 1)


def compare(
    models: Mapping[str, Recommender] | Iterable[Recommender],
    train: Interactions,
    test: Interactions,
    k: int = 10,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    random_state: int = 0,
    refit: bool = False,
    verbose: bool = True,
) -> Comparison:
    """Evaluate several models on one split and test each against the first.

    For every per-user metric, each model's per-user values are compared with the first
    model's by a paired t-test and a seeded paired randomization test; p-values are
    Holm-corrected over the models, so a difference is not claimed on noise.
    """
    named = dict(models) if isinstance(models, Mapping) else {type(m).__name__: m for m in models}
    if not named:
        raise ValueError("compare needs at least one model.")
    reports = {
        name: evaluate(
            model, train, test, k, metrics=metrics, refit=refit, verbose=verbose, name=name
        )
        for name, model in named.items()
    }
    names = list(reports)
    base = reports[names[0]]
    tests: dict[tuple[str, str], dict[str, float | bool]] = {}
    for metric in base.per_user:
        rows = []
        for name in names[1:]:
            a, b = reports[name].per_user[metric], base.per_user[metric]
            ok = np.isfinite(a) & np.isfinite(b)
            diff = a[ok] - b[ok]
            t_p = float(stats.ttest_rel(a[ok], b[ok]).pvalue) if np.any(diff) else 1.0
            r_p = paired_randomization_test(
                a[ok], b[ok], n_resamples=n_resamples, random_state=random_state
            )
            rows.append((name, float(diff.mean()) if diff.size else 0.0, t_p, r_p))
        if not rows:
            continue
        t_adj = _holm([r[2] for r in rows])
        r_adj = _holm([r[3] for r in rows])
        for (name, delta, _, _), tp, rp in zip(rows, t_adj, r_adj, strict=False):
            tests[(name, metric)] = {
                "difference": delta,
                "ttest_p": float(tp),
                "randomization_p": float(rp),
                "significant": bool(rp < alpha),
            }
    return Comparison(reports, tests, alpha)


def cross_validate(
    model: Recommender,
    interactions: Interactions,
    folds: int = 5,
    *,
    k: int = 10,
    metrics: Sequence[str] | None = None,
    random_state: int = 42,
    verbose: bool = True,
) -> dict[str, np.ndarray]:
    """K-fold cross-validation over interaction rows.

    Each fold fits a fresh copy of ``model`` (same parameters) on the other folds. Rating
    models (with ``predict``) report mae/rmse by default, ranking models the default ranking
    metrics. Returns metric -> array of per-fold values (plus ``fit_seconds``).
    """
    if metrics is None:
        metrics = ("mae", "rmse") if hasattr(model, "predict") else DEFAULT_METRICS
    results: dict[str, list[float]] = {m: [] for m in metrics}
    results["fit_seconds"] = []
    parts = list(split.kfold(interactions, folds=folds, random_state=random_state))
    for train, test in tqdm(parts, desc="cross-validate", disable=not verbose, leave=False):
        fresh = type(model)(**model.get_params())
        report = evaluate(fresh, train, test, k, metrics=metrics, verbose=False)
        for m in metrics:
            results[m].append(report.means[m])
        results["fit_seconds"].append(report.fit_seconds)
    return {m: np.asarray(v) for m, v in results.items()}
