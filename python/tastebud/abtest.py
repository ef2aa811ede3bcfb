"""A/B experiments: significance tests, intervals, planning, and off-policy estimates.

Takes a recommender from offline metrics to the decision of an online experiment:

- **Tests** of a difference between a control and a treatment variant, each returning an
  :class:`Experiment` (effect, confidence interval, relative lift with its interval,
  p-value, decision at ``alpha``): :func:`two_proportion_ztest` (CTR, conversion),
  :func:`welch_ttest` (revenue per user, items per session) and :func:`bootstrap_test`
  (any per-user statistic); :func:`bootstrap_ci` alone; :func:`holm` for several variants.
- :func:`analyze` runs them on an event log (:mod:`tastebud.metrics.business`) for every
  treatment variant against the control and Holm-corrects over the treatments.
- **Planning**: :func:`sample_size_proportions`, :func:`power_proportions`,
  :func:`minimum_detectable_effect`, :func:`sample_size_means`, :func:`power_means`.
- **Off-policy estimation** of a new recommender's CTR from logged data with logging
  propensities: :func:`ips_estimate`, :func:`snips_estimate`, :func:`dm_estimate`,
  :func:`dr_estimate`, each with its standard error (:class:`OffPolicyEstimate`).

Conventions: ``a`` / ``control`` is the baseline and ``b`` / ``treatment`` the new variant;
effects are ``treatment - control`` and lifts ``treatment / control - 1``;
``alternative="larger"`` tests ``treatment > control``. Everything is vectorized (no
Python loops over events, users or bootstrap resamples, only over memory-bounding chunks).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

from tastebud.metrics import business as _bz

__all__ = [
    "BootstrapInterval",
    "Experiment",
    "ExperimentReport",
    "OffPolicyEstimate",
    "analyze",
    "bootstrap_ci",
    "bootstrap_test",
    "demo_ab_section",
    "dm_estimate",
    "dr_estimate",
    "holm",
    "ips_estimate",
    "minimum_detectable_effect",
    "power_means",
    "power_proportions",
    "ratio_test",
    "sample_size_means",
    "sample_size_proportions",
    "simulate_ab_log",
    "snips_estimate",
    "two_proportion_ztest",
    "welch_ttest",
]

Alternative = Literal["two-sided", "larger", "smaller"]
_ALTERNATIVES = ("two-sided", "larger", "smaller")
# Bootstrap resamples are drawn in chunks of at most this many values (bounded memory).
_CHUNK_VALUES = 1 << 22


# ============================================================================ validation
def _check_prob(value: Any, name: str) -> float:
    """A number strictly inside (0, 1): alpha, power, confidence."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0.0 < value < 1.0
    ):
        raise ValueError(f"{name} must be a number in (0, 1); got {value!r}.")
    return float(value)


def _check_alternative(alternative: Any) -> str:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}; got {alternative!r}.")
    return str(alternative)


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative integer count; got {value!r}.")
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(f"{name} must be a non-negative integer count; got {value!r}.")
    return int(value)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    return int(value)


def _check_sample(values: Any, name: str, minimum: int = 2) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-unit values; got shape {arr.shape}.")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}.")
    if arr.shape[0] < minimum:
        raise ValueError(f"{name} needs at least {minimum} values; got {arr.shape[0]}.")
    out = arr.astype(np.float64)
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise ValueError(f"{name} must be finite; got {bad} NaN or infinite value(s).")
    return out


def _p_value(statistic: float, alternative: str, sf: Callable[[float], float]) -> float:
    """p-value of a symmetric null distribution with survival function ``sf``."""
    if math.isnan(statistic):
        return float("nan")
    if alternative == "two-sided":
        return float(min(1.0, 2.0 * sf(abs(statistic))))
    if alternative == "larger":
        return float(sf(statistic))
    return float(sf(-statistic))


def _interval(
    center: float, se: float, alpha: float, alternative: str, quantile: Callable[[float], float]
) -> tuple[float, float]:
    """``center ± q * se``: two-sided, or a one-sided bound matching the alternative."""
    if not math.isfinite(center) or not math.isfinite(se):
        return (float("nan"), float("nan"))
    if alternative == "two-sided":
        q = quantile(1.0 - alpha / 2.0)
        return (center - q * se, center + q * se)
    q = quantile(1.0 - alpha)
    if alternative == "larger":
        return (center - q * se, math.inf)
    return (-math.inf, center + q * se)


# ============================================================================ Experiment
@dataclass(frozen=True)
class Experiment:
    """Result of comparing a treatment variant with the control on one metric.

    Attributes
    ----------
    metric, method : str
        What was compared and how (e.g. ``"ctr"``, ``"two-proportion z-test"``).
    control, treatment : str
        Variant labels.
    control_value, treatment_value : float
        The metric in each variant (rates, means, or bootstrap statistics).
    n_control, n_treatment : int
        Units behind each value (impressions for CTR, users otherwise).
    effect : float
        ``treatment_value - control_value``.
    ci : (float, float)
        ``1 - alpha`` confidence interval of the effect (one-sided bound for one-sided
        alternatives). Not adjusted for multiple comparisons.
    lift, lift_ci : float, (float, float)
        Relative lift ``treatment / control - 1`` and its interval (see each test for the
        method: delta method on the log ratio for proportions, Fieller's interval for means,
        bootstrap percentiles for the bootstrap test).
    statistic, p_value : float
        Test statistic and (unadjusted) p-value.
    alpha : float
        Significance level of the decision.
    alternative : str
        ``"two-sided"``, ``"larger"`` (treatment > control) or ``"smaller"``.
    p_adjusted : float or None
        Holm-adjusted p-value when several treatments were compared (:func:`analyze`).
    """

    metric: str
    method: str
    control: str
    treatment: str
    control_value: float
    treatment_value: float
    n_control: int
    n_treatment: int
    effect: float
    ci: tuple[float, float]
    lift: float
    lift_ci: tuple[float, float]
    statistic: float
    p_value: float
    alpha: float = 0.05
    alternative: str = "two-sided"
    p_adjusted: float | None = None

    @property
    def p_decision(self) -> float:
        """The p-value the decision uses: Holm-adjusted if available, else raw."""
        return self.p_value if self.p_adjusted is None else self.p_adjusted

    @property
    def significant(self) -> bool:
        """Whether the null hypothesis is rejected at ``alpha``."""
        return bool(self.p_decision < self.alpha)

    @property
    def decision(self) -> str:
        if not self.significant:
            return "no significant difference"
        return f"{self.treatment} {'higher' if self.effect > 0 else 'lower'}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(
            ci_low=self.ci[0],
            ci_high=self.ci[1],
            lift_ci_low=self.lift_ci[0],
            lift_ci_high=self.lift_ci[1],
            significant=self.significant,
            decision=self.decision,
        )
        del out["ci"], out["lift_ci"]
        return out

    def to_frame(self) -> Any:
        """One-row ``pandas.DataFrame`` (raises ImportError without pandas)."""
        return _pandas().DataFrame([self.to_dict()])

    def summary(self) -> str:
        """A few readable lines: values, effect and lift with intervals, test, decision."""
        level = f"{100 * (1 - self.alpha):g}%"
        p = f"p = {_fmt_p(self.p_value)}"
        if self.p_adjusted is not None:
            p += f" (Holm {_fmt_p(self.p_adjusted)})"
        return "\n".join(
            [
                f"{self.metric}: {self.treatment} vs {self.control} ({self.method}, "
                f"{self.alternative})",
                f"  {self.control}: {_fmt_v(self.control_value)} (n={self.n_control:,})   "
                f"{self.treatment}: {_fmt_v(self.treatment_value)} (n={self.n_treatment:,})",
                f"  effect {_fmt_v(self.effect, True)}  {level} CI {_fmt_ci(self.ci, _signed)}",
                f"  lift   {_fmt_pct(self.lift)}  {level} CI {_fmt_ci(self.lift_ci, _fmt_pct)}",
                f"  statistic {self.statistic:.3f}, {p} -> "
                f"{'significant' if self.significant else 'not significant'} at "
                f"alpha={self.alpha:g}: {self.decision}",
            ]
        )

    def __str__(self) -> str:
        return self.summary()


def _fmt_p(p: float) -> str:
    return "nan" if math.isnan(p) else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")


def _fmt_v(x: float, sign: bool = False) -> str:
    if not math.isfinite(x):
        return str(x)
    s = f"{x:+.4g}" if sign else f"{x:.4g}"
    return s


def _signed(x: float) -> str:
    return _fmt_v(x, True)


def _fmt_pct(x: float) -> str:
    return str(x) if not math.isfinite(x) else f"{100 * x:+.1f}%"


def _fmt_ci(ci: tuple[float, float], fmt: Callable[..., str]) -> str:
    lo = "-inf" if ci[0] == -math.inf else fmt(ci[0])
    hi = "+inf" if ci[1] == math.inf else fmt(ci[1])
    return f"[{lo}, {hi}]"


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is installed in the test env
        raise ImportError("to_frame() needs pandas: pip install pandas") from exc
    return pd


@dataclass(frozen=True)
class ExperimentReport:
    """Several :class:`Experiment` results (metrics x treatments) of one experiment.

    Index with ``report["ctr"]`` (the only treatment) or ``report["ctr", "B"]``.
    """

    experiments: tuple[Experiment, ...]
    variants: _bz.VariantSummary | None = None

    def __iter__(self) -> Iterator[Experiment]:
        return iter(self.experiments)

    def __len__(self) -> int:
        return len(self.experiments)

    def __getitem__(self, key: str | tuple[str, str]) -> Experiment:
        metric, treatment = (key, None) if isinstance(key, str) else key
        hits = [
            e
            for e in self.experiments
            if e.metric == metric and (treatment is None or e.treatment == treatment)
        ]
        if len(hits) != 1:
            raise KeyError(
                f"{key!r} matches {len(hits)} experiments; have "
                f"{[(e.metric, e.treatment) for e in self.experiments]}."
            )
        return hits[0]

    def to_frame(self) -> Any:
        """One row per experiment (raises ImportError without pandas)."""
        return _pandas().DataFrame([e.to_dict() for e in self.experiments])

    def summary(self) -> str:
        """A table: metric, variants, values, lift with CI, p-values and decision."""
        if not self.experiments:
            return "ExperimentReport(empty)"
        alpha = self.experiments[0].alpha
        level = f"{100 * (1 - alpha):g}%"
        header = [
            "metric",
            "test",
            "control",
            "treatment",
            f"lift [{level} CI]",
            "p",
            "p_holm",
            "decision",
        ]
        rows = []
        for e in self.experiments:
            rows.append(
                [
                    e.metric,
                    e.method,
                    f"{e.control}={_fmt_v(e.control_value)}",
                    f"{e.treatment}={_fmt_v(e.treatment_value)}",
                    f"{_fmt_pct(e.lift)} {_fmt_ci(e.lift_ci, _fmt_pct)}",
                    _fmt_p(e.p_value),
                    "-" if e.p_adjusted is None else _fmt_p(e.p_adjusted),
                    e.decision,
                ]
            )
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.append(
            f"decision at alpha={alpha:g}, two-sided unless stated; p_holm: Holm-adjusted over "
            "the treatments of each metric"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ============================================================================ tests
def two_proportion_ztest(
    successes_a: int,
    trials_a: int,
    successes_b: int,
    trials_b: int,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    metric: str = "rate",
    labels: tuple[str, str] = ("A", "B"),
) -> Experiment:
    """Two-proportion z-test of ``p_b - p_a`` (CTR, conversion).

    The statistic uses the pooled standard error under H0 (``p_a = p_b``),
    ``z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b))`` with ``p`` the pooled rate; its
    square is Pearson's chi-square of the 2x2 table without continuity correction. The
    interval of the difference is the unpooled Wald interval. The lift ``p_b / p_a - 1`` gets
    the delta-method interval on the log scale (Katz et al. 1978):
    ``se(log(p_b/p_a)) = sqrt((1-p_a)/x_a + (1-p_b)/x_b)``, back-transformed; it is NaN
    when either variant has no successes.

    Trials must be independent: for CTR with user-level randomisation impressions of one
    user are correlated and this test is somewhat anti-conservative; a per-user bootstrap
    (:func:`bootstrap_test`) accounts for it.

    Raises
    ------
    ValueError
        Zero trials (e.g. zero impressions), successes > trials, non-integer or negative
        counts, ``alpha`` outside (0, 1).
    """
    alpha = _check_prob(alpha, "alpha")
    alternative = _check_alternative(alternative)
    xa, na = _check_count(successes_a, "successes_a"), _check_count(trials_a, "trials_a")
    xb, nb = _check_count(successes_b, "successes_b"), _check_count(trials_b, "trials_b")
    for x, n, tag in ((xa, na, "a"), (xb, nb, "b")):
        if n == 0:
            raise ValueError(f"trials_{tag} must be > 0 (e.g. impressions); got 0.")
        if x > n:
            raise ValueError(
                f"successes_{tag} must not exceed trials_{tag} (e.g. clicks <= impressions); "
                f"got {x} > {n}."
            )
    pa, pb = xa / na, xb / nb
    pooled = (xa + xb) / (na + nb)
    se0 = math.sqrt(pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb))
    effect = pb - pa
    z = effect / se0 if se0 > 0 else 0.0  # both rates 0 or both 1: no evidence
    p_value = _p_value(z, alternative, stats.norm.sf)
    se1 = math.sqrt(pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb)
    ci = _interval(effect, se1, alpha, alternative, stats.norm.ppf)
    if xa > 0 and xb > 0:
        log_ratio = math.log(pb / pa)
        se_log = math.sqrt(max(0.0, (1.0 - pa) / xa + (1.0 - pb) / xb))
        lo, hi = _interval(log_ratio, se_log, alpha, alternative, stats.norm.ppf)
        lift_ci = (math.expm1(lo) if lo > -math.inf else -1.0, math.expm1(hi))
        lift = pb / pa - 1.0
    else:
        lift = pb / pa - 1.0 if pa > 0 else float("nan")
        lift_ci = (float("nan"), float("nan"))
    return Experiment(
        metric,
        "two-proportion z-test",
        str(labels[0]),
        str(labels[1]),
        pa,
        pb,
        na,
        nb,
        effect,
        ci,
        lift,
        lift_ci,
        float(z),
        p_value,
        alpha,
        alternative,
    )


def welch_ttest(
    a: Any,
    b: Any,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    metric: str = "mean",
    labels: tuple[str, str] = ("A", "B"),
) -> Experiment:
    """Welch's unequal-variance t-test of ``mean(b) - mean(a)`` (revenue per user, ...).

    ``a`` and ``b`` hold one value per randomisation unit (user). The statistic and the
    Welch-Satterthwaite degrees of freedom are those of
    ``scipy.stats.ttest_ind(b, a, equal_var=False)``; the interval of the difference uses the
    t quantile with those degrees of freedom. The lift ``mean(b) / mean(a) - 1`` gets
    Fieller's interval (:func:`_fieller`, same t quantile), which -- unlike the delta method
    -- is consistent with the test: it excludes 0 exactly when the test rejects, and it is
    asymmetric as the ratio's distribution is. It is unbounded when ``mean(a)`` is not
    distinguishable from 0.
    """
    alpha = _check_prob(alpha, "alpha")
    alternative = _check_alternative(alternative)
    xa = _check_sample(a, "a")
    xb = _check_sample(b, "b")
    na, nb = xa.shape[0], xb.shape[0]
    ma, mb = float(xa.mean()), float(xb.mean())
    va, vb = float(xa.var(ddof=1)) / na, float(xb.var(ddof=1)) / nb
    se = math.sqrt(va + vb)
    effect = mb - ma
    if se > 0:
        df = se**4 / (va**2 / (na - 1) + vb**2 / (nb - 1))
        t = effect / se
    else:  # both samples constant
        df = float(na + nb - 2)
        t = 0.0 if effect == 0 else math.copysign(math.inf, effect)
    p_value = _p_value(t, alternative, lambda x: stats.t.sf(x, df))
    ci = _interval(effect, se, alpha, alternative, lambda q: stats.t.ppf(q, df))
    lift = mb / ma - 1.0 if ma != 0 else float("nan")
    lift_ci = _fieller(ma, mb, va, vb, alpha, alternative, lambda q: stats.t.ppf(q, df))
    return Experiment(
        metric,
        "Welch t-test",
        str(labels[0]),
        str(labels[1]),
        ma,
        mb,
        na,
        nb,
        effect,
        ci,
        lift,
        lift_ci,
        float(t),
        p_value,
        alpha,
        alternative,
    )


def _fieller(
    ma: float,
    mb: float,
    va: float,
    vb: float,
    alpha: float,
    alternative: str,
    quantile: Callable[[float], float],
) -> tuple[float, float]:
    """Fieller's interval of ``mb / ma - 1`` for independent means with variances ``va``,
    ``vb`` (Fieller 1954): all ``rho`` with ``|mb - rho ma| <= q sqrt(vb + rho^2 va)``.

    At ``rho = 1`` the inequality is Welch's test, so the interval excludes a lift of 0
    exactly when the test (with the same quantile) rejects. Unbounded (``(-inf, inf)``)
    when ``ma`` itself is not significantly different from 0.
    """
    q = quantile(1.0 - alpha / 2.0 if alternative == "two-sided" else 1.0 - alpha)
    a = ma * ma - q * q * va
    if a <= 0:
        return (-math.inf, math.inf)
    half = q * math.sqrt(max(0.0, ma * ma * vb + mb * mb * va - q * q * va * vb))
    lo, hi = (ma * mb - half) / a - 1.0, (ma * mb + half) / a - 1.0
    if alternative == "larger":
        return (lo, math.inf)
    if alternative == "smaller":
        return (-math.inf, hi)
    return (lo, hi)


def ratio_test(
    numerator_a: Any,
    denominator_a: Any,
    numerator_b: Any,
    denominator_b: Any,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    metric: str = "ratio",
    labels: tuple[str, str] = ("A", "B"),
) -> Experiment:
    """Delta-method z-test of a ratio metric whose unit of analysis is finer than the unit of
    randomisation, e.g. CTR = sum(clicks) / sum(impressions) with users randomised.

    Takes per-user numerators and denominators. ``R = sum(num) / sum(den)`` and
    ``Var(R) = (s_nn - 2 R s_nd + R^2 s_dd) / (n mean(den)^2)`` from the per-user sample
    (co)variances (Deng, Knoblich & Lu 2018, "Applying the delta method in metric
    analytics", KDD). Unlike :func:`two_proportion_ztest` on impressions it does not assume
    impressions independent, so it keeps its false-positive rate when users differ in
    their CTR. Lift interval: Fieller's (consistent with the test).
    """
    alpha = _check_prob(alpha, "alpha")
    alternative = _check_alternative(alternative)
    parts = []
    for tag, num, den in (("a", numerator_a, denominator_a), ("b", numerator_b, denominator_b)):
        x = _check_sample(num, f"numerator_{tag}")
        d = _check_sample(den, f"denominator_{tag}")
        if x.shape != d.shape:
            raise ValueError(
                f"numerator_{tag} and denominator_{tag} must have one value per user each; "
                f"got {x.shape[0]} and {d.shape[0]}."
            )
        if (d < 0).any() or d.sum() <= 0:
            raise ValueError(
                f"denominator_{tag} must be >= 0 with a positive total (e.g. impressions); "
                f"got total {d.sum()!r}."
            )
        n = x.shape[0]
        r = float(x.sum() / d.sum())
        cov = np.cov(x, d)  # ddof=1
        var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * d.mean() ** 2)
        parts.append((r, max(float(var), 0.0), int(d.sum())))
    (ra, va, na), (rb, vb, nb) = parts
    se = math.sqrt(va + vb)
    effect = rb - ra
    z = effect / se if se > 0 else (0.0 if effect == 0 else math.copysign(math.inf, effect))
    p_value = _p_value(z, alternative, stats.norm.sf)
    ci = _interval(effect, se, alpha, alternative, stats.norm.ppf)
    lift = rb / ra - 1.0 if ra != 0 else float("nan")
    lift_ci = _fieller(ra, rb, va, vb, alpha, alternative, stats.norm.ppf)
    return Experiment(
        metric,
        "delta-method z-test",
        str(labels[0]),
        str(labels[1]),
        ra,
        rb,
        na,
        nb,
        effect,
        ci,
        lift,
        lift_ci,
        float(z),
        p_value,
        alpha,
        alternative,
    )


# ============================================================================ bootstrap
@dataclass(frozen=True)
class BootstrapInterval:
    """A bootstrap confidence interval.

    ``estimate`` is the statistic on the data (for two samples ``stat(b) - stat(a)``),
    ``std_error`` the standard deviation of its bootstrap distribution.
    """

    estimate: float
    low: float
    high: float
    std_error: float
    confidence: float
    method: str
    n_resamples: int


_STATISTICS: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "median": np.median}


def _statistic(statistic: Any) -> tuple[Callable[..., np.ndarray], bool]:
    if isinstance(statistic, str):
        if statistic not in _STATISTICS:
            raise ValueError(
                f"statistic must be one of {sorted(_STATISTICS)} or a callable; got {statistic!r}."
            )
        return _STATISTICS[statistic], statistic == "mean"
    if not callable(statistic):
        raise TypeError(f"statistic must be a string or a callable; got {statistic!r}.")
    return statistic, False


def _resample_stats(
    x: np.ndarray, stat: Callable[..., np.ndarray], n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``stat`` of ``n_resamples`` resamples of ``x`` (with replacement), in chunks."""
    n = x.shape[0]
    rows = max(1, _CHUNK_VALUES // n)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):  # chunks of resamples, bounded memory
        stop = min(n_resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = stat(x[idx], axis=-1)
    return out


def _jackknife(x: np.ndarray, stat: Callable[..., np.ndarray], is_mean: bool) -> np.ndarray:
    """Leave-one-out values of ``stat`` (closed form for the mean; else O(n^2) work)."""
    n = x.shape[0]
    if is_mean:
        return (x.sum() - x) / (n - 1)
    out = np.empty(n)
    rows = max(1, _CHUNK_VALUES // n)
    cols = np.arange(n - 1)
    for start in range(0, n, rows):
        drop = np.arange(start, min(n, start + rows))
        idx = cols[None, :] + (cols[None, :] >= drop[:, None])
        out[drop] = stat(x[idx], axis=-1)
    return out


def _acceleration(jackknives: Sequence[np.ndarray]) -> float:
    """BCa acceleration from jackknife values of each sample (Efron & Tibshirani 1993,
    eq. 14.15; the multi-sample form of scipy.stats.bootstrap)."""
    num = den = 0.0
    for theta in jackknives:
        n = theta.shape[0]
        u = (n - 1) * (theta.mean() - theta)
        num += float((u**3).sum()) / n**3
        den += float((u**2).sum()) / n**2
    return num / (6.0 * den**1.5) if den > 0 else 0.0


def _bootstrap(
    a: Any,
    b: Any,
    statistic: Any,
    n_resamples: Any,
    random_state: Any,
) -> tuple[np.ndarray, np.ndarray | None, Callable[..., np.ndarray], bool, np.ndarray, float]:
    stat, is_mean = _statistic(statistic)
    n_resamples = _check_int(n_resamples, "n_resamples", 100)
    xa = _check_sample(a, "a")
    xb = None if b is None else _check_sample(b, "b")
    rng = np.random.default_rng(random_state)
    boot = _resample_stats(xa, stat, n_resamples, rng)
    estimate = float(stat(xa, axis=-1))
    if xb is not None:
        boot_b = _resample_stats(xb, stat, n_resamples, rng)
        boot = np.stack([boot, boot_b])
        estimate = float(stat(xb, axis=-1)) - estimate
    return xa, xb, stat, is_mean, boot, estimate


def bootstrap_ci(
    a: Any,
    b: Any = None,
    *,
    statistic: str | Callable[..., np.ndarray] = "mean",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    method: Literal["percentile", "basic", "bca"] = "percentile",
    random_state: int | None = 0,
) -> BootstrapInterval:
    """Bootstrap confidence interval of a per-unit statistic, or of a difference.

    With one sample, the interval of ``statistic(a)``; with two independent samples, of
    ``statistic(b) - statistic(a)`` (each resampled separately, as the variants of an
    experiment are). Resampling is vectorized: index matrices of shape
    ``(chunk, n)`` drawn from ``numpy.random.default_rng(random_state)``.

    Parameters
    ----------
    a, b : array-like
        One value per unit (e.g. revenue of each user of a variant).
    statistic : {"mean", "median"} or callable
        A callable must reduce along ``axis=-1`` like ``np.mean(x, axis=-1)``.
    confidence : float
        In (0, 1).
    n_resamples : int
        Bootstrap resamples (>= 100).
    method : {"percentile", "basic", "bca"}
        ``percentile``: quantiles of the bootstrap distribution. ``basic`` (reverse
        percentile): ``2 theta - q``. ``bca``: bias-corrected and accelerated
        (Efron 1987; Efron & Tibshirani 1993, ch. 14), the acceleration from the jackknife
        (closed form for the mean, O(n^2) work for other statistics).
    random_state : int or None
        Seed.
    """
    return _bootstrap_interval(a, b, statistic, confidence, n_resamples, method, random_state)[0]


def _bootstrap_interval(
    a: Any,
    b: Any,
    statistic: Any,
    confidence: Any,
    n_resamples: Any,
    method: Any,
    random_state: Any,
) -> tuple[BootstrapInterval, np.ndarray, np.ndarray | None, Callable[..., np.ndarray], np.ndarray]:
    """:func:`bootstrap_ci` plus what it computed on the way (samples, statistic, resamples)."""
    confidence = _check_prob(confidence, "confidence")
    if method not in ("percentile", "basic", "bca"):
        raise ValueError(f"method must be 'percentile', 'basic' or 'bca'; got {method!r}.")
    xa, xb, stat, is_mean, boot, estimate = _bootstrap(a, b, statistic, n_resamples, random_state)
    theta = boot if xb is None else boot[1] - boot[0]
    alpha = 1.0 - confidence
    lo_q, hi_q = alpha / 2.0, 1.0 - alpha / 2.0
    if method == "bca":
        below = (np.count_nonzero(theta < estimate) + np.count_nonzero(theta <= estimate)) / (
            2.0 * theta.shape[0]
        )
        below = min(max(below, 1.0 / theta.shape[0]), 1.0 - 1.0 / theta.shape[0])
        z0 = float(stats.norm.ppf(below))
        if xb is None:
            jack = [_jackknife(xa, stat, is_mean)]
        else:
            sa, sb = float(stat(xa, axis=-1)), float(stat(xb, axis=-1))
            jack = [sb - _jackknife(xa, stat, is_mean), _jackknife(xb, stat, is_mean) - sa]
        acc = _acceleration(jack)
        z = stats.norm.ppf([lo_q, hi_q])
        adj = stats.norm.cdf(z0 + (z0 + z) / (1.0 - acc * (z0 + z)))
        lo_q, hi_q = float(adj[0]), float(adj[1])
    q_lo, q_hi = np.quantile(theta, [lo_q, hi_q])
    if method == "basic":
        q_lo, q_hi = 2.0 * estimate - q_hi, 2.0 * estimate - q_lo
    interval = BootstrapInterval(
        estimate,
        float(q_lo),
        float(q_hi),
        float(theta.std(ddof=1)),
        confidence,
        method,
        int(theta.shape[0]),
    )
    return interval, xa, xb, stat, boot


def bootstrap_test(
    a: Any,
    b: Any,
    *,
    statistic: str | Callable[..., np.ndarray] = "mean",
    alpha: float = 0.05,
    n_resamples: int = 2000,
    method: Literal["percentile", "basic", "bca"] = "percentile",
    metric: str = "statistic",
    labels: tuple[str, str] = ("A", "B"),
    random_state: int | None = 0,
) -> Experiment:
    """Two-sided bootstrap comparison of ``statistic(b)`` with ``statistic(a)``.

    The effect interval is :func:`bootstrap_ci` (``method``); the lift interval the
    percentile interval of ``stat(b*) / stat(a*) - 1`` over the same resamples. The p-value
    inverts the percentile interval: ``2 * min(P(theta* <= 0), P(theta* >= 0))`` with the
    ``(count + 1) / (B + 1)`` correction, i.e. the smallest level at which a percentile
    interval excludes zero. The same seed gives the same resamples as :func:`bootstrap_ci`.
    """
    alpha = _check_prob(alpha, "alpha")
    if b is None:
        raise ValueError("bootstrap_test needs two samples, a (control) and b (treatment).")
    interval, xa, xb, stat, boot = _bootstrap_interval(
        a, b, statistic, 1.0 - alpha, n_resamples, method, random_state
    )
    xb = np.asarray(xb)
    va, vb = float(stat(xa, axis=-1)), float(stat(xb, axis=-1))
    theta = boot[1] - boot[0]
    n_b = theta.shape[0]
    p_value = min(
        1.0,
        2.0
        * min(
            (np.count_nonzero(theta <= 0) + 1) / (n_b + 1),
            (np.count_nonzero(theta >= 0) + 1) / (n_b + 1),
        ),
    )
    if va != 0 and np.all(boot[0] != 0):
        ratio = boot[1] / boot[0] - 1.0
        lift_ci = tuple(float(v) for v in np.quantile(ratio, [alpha / 2, 1 - alpha / 2]))
        lift = vb / va - 1.0
    else:
        lift, lift_ci = float("nan"), (float("nan"), float("nan"))
    name = statistic if isinstance(statistic, str) else getattr(statistic, "__name__", "stat")
    return Experiment(
        metric,
        f"bootstrap {method} ({name})",
        str(labels[0]),
        str(labels[1]),
        va,
        vb,
        xa.shape[0],
        xb.shape[0],
        interval.estimate,
        (interval.low, interval.high),
        lift,
        (lift_ci[0], lift_ci[1]),
        interval.estimate / interval.std_error if interval.std_error > 0 else 0.0,
        float(p_value),
        alpha,
        "two-sided",
    )


def holm(pvalues: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): controls the family-wise error rate.

    ``adjusted_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))`` over the sorted p-values;
    reject where ``adjusted < alpha``. Vectorized (one sort, one cumulative max).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be a 1-D array; got shape {p.shape}.")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("pvalues must be numbers in [0, 1] without NaN.")
    m = p.shape[0]
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


# ============================================================================ planning
def _rates(baseline: Any, mde: Any, relative: bool) -> tuple[float, float]:
    p1 = _check_prob(baseline, "baseline")
    if isinstance(mde, bool) or not isinstance(mde, numbers.Real) or not math.isfinite(mde):
        raise ValueError(f"mde must be a finite non-zero number; got {mde!r}.")
    if mde == 0:
        raise ValueError("mde must be non-zero (the effect the test should detect); got 0.")
    p2 = p1 * (1.0 + mde) if relative else p1 + mde
    if not 0.0 < p2 < 1.0:
        kind = "relative" if relative else "absolute"
        raise ValueError(
            f"baseline {p1} with {kind} mde {mde} gives a treatment rate {p2}, outside (0, 1)."
        )
    return p1, p2


def _critical(alpha: float, alternative: str) -> float:
    return float(stats.norm.ppf(1.0 - alpha / 2.0 if alternative == "two-sided" else 1.0 - alpha))


def _power_prop(
    p1: float, p2: float, n: float, alpha: float, alternative: str, method: str
) -> float:
    """Power of the two-proportion z-test with ``n`` per variant (both tails counted)."""
    zc = _critical(alpha, alternative)
    if method == "pooled":
        pbar = (p1 + p2) / 2.0
        s0 = math.sqrt(2.0 * pbar * (1.0 - pbar) / n)
        s1 = math.sqrt((p1 * (1.0 - p1) + p2 * (1.0 - p2)) / n)
        delta = p2 - p1
        up = stats.norm.cdf((delta - zc * s0) / s1)
        down = stats.norm.cdf((-delta - zc * s0) / s1)
    else:  # arcsine (Cohen's h)
        h = 2.0 * math.asin(math.sqrt(p2)) - 2.0 * math.asin(math.sqrt(p1))
        shift = h * math.sqrt(n / 2.0)
        up = stats.norm.cdf(shift - zc)
        down = stats.norm.cdf(-shift - zc)
    if alternative == "two-sided":
        return float(up + down)
    return float(up if alternative == "larger" else down)


def _check_method(method: Any) -> str:
    if method not in ("pooled", "arcsine"):
        raise ValueError(f"method must be 'pooled' or 'arcsine'; got {method!r}.")
    return str(method)


def _check_direction(delta: float, alternative: str) -> None:
    if (alternative == "larger" and delta < 0) or (alternative == "smaller" and delta > 0):
        raise ValueError(
            f"alternative={alternative!r} cannot detect an effect of the opposite sign "
            f"(mde gives a change of {delta:+g})."
        )


def power_proportions(
    baseline: float,
    mde: float,
    n_per_variant: int,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    method: Literal["pooled", "arcsine"] = "pooled",
) -> float:
    """Power of the two-proportion z-test with ``n_per_variant`` units in each of two
    variants, when the true rates are ``baseline`` and ``baseline + mde`` (``relative``:
    ``baseline * (1 + mde)``).

    ``method="pooled"`` is the normal approximation of the test of
    :func:`two_proportion_ztest` (pooled SE under H0, unpooled under H1; Fleiss et al.
    2003, eq. 4.14, without continuity correction); ``"arcsine"`` uses Cohen's effect size
    ``h = 2 asin sqrt(p2) - 2 asin sqrt(p1)`` (Cohen 1988, ch. 6; statsmodels'
    ``NormalIndPower`` with ``proportion_effectsize``). Two-sided power counts both tails.
    """
    alpha = _check_prob(alpha, "alpha")
    alternative = _check_alternative(alternative)
    method = _check_method(method)
    p1, p2 = _rates(baseline, mde, relative)
    n = _check_int(n_per_variant, "n_per_variant", 1)
    return _power_prop(p1, p2, float(n), alpha, alternative, method)


def _smallest_n(power_at: Callable[[float], float], target: float, start: float) -> int:
    """Smallest integer n >= 2 with ``power_at(n) >= target`` near the closed-form ``start``."""
    n = max(2, math.ceil(start - 1e-9))
    while power_at(n) < target:  # the closed form is off by a few units at most
        n += 1
    while n > 2 and power_at(n - 1) >= target:
        n -= 1
    return n


def sample_size_proportions(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    method: Literal["pooled", "arcsine"] = "pooled",
) -> int:
    """Users (or impressions) per variant to detect a change of a rate, two equal groups.

    The minimum detectable effect ``mde`` is absolute (``0.01`` = one percentage point)
    unless ``relative=True`` (``0.1`` = +10% of ``baseline``). The closed form
    ``n = (z_c sqrt(2 pbar qbar) + z_power sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2``
    (``pbar`` the mean rate, ``z_c`` the critical value for ``alpha`` and ``alternative``;
    Fleiss et al. 2003, eq. 4.14) or, with ``method="arcsine"``,
    ``n = 2 ((z_c + z_power) / h)^2`` is refined to the smallest integer whose exact power
    (:func:`power_proportions`, both tails) reaches ``power``.

    Examples
    --------
    >>> sample_size_proportions(0.10, 0.02)  # 10% -> 12% CTR, alpha 0.05, power 0.8
    3841
    """
    alpha = _check_prob(alpha, "alpha")
    target = _check_prob(power, "power")
    alternative = _check_alternative(alternative)
    method = _check_method(method)
    p1, p2 = _rates(baseline, mde, relative)
    _check_direction(p2 - p1, alternative)
    zc, zb = _critical(alpha, alternative), float(stats.norm.ppf(target))
    if method == "pooled":
        pbar = (p1 + p2) / 2.0
        root = zc * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
        start = (root / (p2 - p1)) ** 2
    else:
        h = 2.0 * math.asin(math.sqrt(p2)) - 2.0 * math.asin(math.sqrt(p1))
        start = 2.0 * ((zc + zb) / h) ** 2
    return _smallest_n(lambda n: _power_prop(p1, p2, n, alpha, alternative, method), target, start)


def minimum_detectable_effect(
    baseline: float,
    n_per_variant: int,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    method: Literal["pooled", "arcsine"] = "pooled",
) -> float:
    """Smallest change of ``baseline`` detected with ``power`` given ``n_per_variant``.

    Solves :func:`power_proportions` for the effect (Brent's method). Returns an absolute
    change, or a relative one with ``relative=True``; positive (an increase) except for
    ``alternative="smaller"``, where it is negative.
    """
    alpha = _check_prob(alpha, "alpha")
    target = _check_prob(power, "power")
    alternative = _check_alternative(alternative)
    method = _check_method(method)
    p1 = _check_prob(baseline, "baseline")
    n = float(_check_int(n_per_variant, "n_per_variant", 2))
    sign = -1.0 if alternative == "smaller" else 1.0
    edge = (p1 if sign < 0 else 1.0 - p1) * (1.0 - 1e-9)

    def gap(d: float) -> float:
        return _power_prop(p1, p1 + sign * d, n, alpha, alternative, method) - target

    if gap(edge) < 0:
        raise ValueError(
            f"n_per_variant={int(n)} cannot reach power {target} for any change of a "
            f"baseline {p1}; increase n_per_variant."
        )
    delta = sign * optimize.brentq(gap, 1e-12, edge, xtol=1e-12, rtol=1e-10)
    return delta / p1 if relative else delta


def power_means(
    mde: float,
    std: float,
    n_per_variant: int,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> float:
    """Power of the two-sample t-test (equal groups, common ``std``) to detect a difference
    of means ``mde`` (e.g. revenue per user): the exact noncentral-t power with
    ``df = 2n - 2`` and noncentrality ``(mde / std) sqrt(n / 2)`` (Cohen 1988, ch. 2)."""
    alpha = _check_prob(alpha, "alpha")
    alternative = _check_alternative(alternative)
    d = _effect_size(mde, std)
    n = _check_int(n_per_variant, "n_per_variant", 2)
    return _power_t(d, float(n), alpha, alternative)


def _effect_size(mde: Any, std: Any) -> float:
    for name, v in (("mde", mde), ("std", std)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number; got {v!r}.")
    if std <= 0:
        raise ValueError(f"std must be > 0; got {std!r}.")
    if mde == 0:
        raise ValueError("mde must be non-zero; got 0.")
    return float(mde) / float(std)


def _power_t(d: float, n: float, alpha: float, alternative: str) -> float:
    df = 2.0 * n - 2.0
    nc = d * math.sqrt(n / 2.0)
    if alternative == "two-sided":
        crit = stats.t.ppf(1.0 - alpha / 2.0, df)
        return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    crit = stats.t.ppf(1.0 - alpha, df)
    if alternative == "larger":
        return float(stats.nct.sf(crit, df, nc))
    return float(stats.nct.cdf(-crit, df, nc))


def sample_size_means(
    mde: float,
    std: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
) -> int:
    """Units per variant for the t-test to detect a difference of means ``mde`` with a
    common standard deviation ``std``: starts from the normal approximation
    ``2 ((z_c + z_power) std / mde)^2`` and returns the smallest integer whose
    :func:`power_means` reaches ``power``.

    Examples
    --------
    >>> sample_size_means(0.5, 1.0)  # Cohen's d = 0.5: the classic 64 per group
    64
    """
    alpha = _check_prob(alpha, "alpha")
    target = _check_prob(power, "power")
    alternative = _check_alternative(alternative)
    d = _effect_size(mde, std)
    _check_direction(d, alternative)
    start = 2.0 * ((_critical(alpha, alternative) + stats.norm.ppf(target)) / d) ** 2
    return _smallest_n(lambda n: _power_t(d, n, alpha, alternative), target, start)


# ============================================================================ off-policy
@dataclass(frozen=True)
class OffPolicyEstimate:
    """Offline estimate of a new policy's expected reward (e.g. CTR) from logged data.

    Attributes
    ----------
    method : str
        ``"IPS"``, ``"SNIPS"``, ``"DM"`` or ``"DR"``.
    value, std_error : float
        The estimate and its standard error (see each estimator for what it includes).
    n : int
        Logged rounds used.
    effective_sample_size : float
        ``(sum w)^2 / sum w^2`` of the importance weights (``n`` for DM): how many
        on-policy samples the estimate is worth (Kong 1992).
    """

    method: str
    value: float
    std_error: float
    n: int
    effective_sample_size: float

    def ci(self, alpha: float = 0.05) -> tuple[float, float]:
        """Normal ``1 - alpha`` interval ``value ± z std_error``."""
        alpha = _check_prob(alpha, "alpha")
        return _interval(self.value, self.std_error, alpha, "two-sided", stats.norm.ppf)

    def __str__(self) -> str:
        lo, hi = self.ci()
        return (
            f"{self.method}: {self.value:.4f} ± {self.std_error:.4f} (95% CI [{lo:.4f}, "
            f"{hi:.4f}], n={self.n:,}, effective n={self.effective_sample_size:,.0f})"
        )


def _check_logged(
    rewards: Any, actions: Any, logging_propensity: Any
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    r = _check_sample(rewards, "rewards", 1)
    n = r.shape[0]
    p0 = _check_sample(logging_propensity, "logging_propensity", 1)
    if p0.shape[0] != n:
        raise ValueError(
            f"logging_propensity must have one value per logged round ({n}); got {p0.shape[0]}."
        )
    if (p0 <= 0).any() or (p0 > 1).any():
        raise ValueError(
            "logging_propensity must be in (0, 1] (the probability the logging policy gave the "
            f"logged action); got values in [{p0.min()!r}, {p0.max()!r}]."
        )
    a = None
    if actions is not None:
        a = np.asarray(actions)
        if a.ndim != 1 or a.shape[0] != n or a.dtype.kind not in "iu":
            raise ValueError(
                f"actions must be a 1-D integer array of the {n} logged actions; got "
                f"{_bz._describe(a)}."
            )
        if (a < 0).any():
            raise ValueError("actions must be non-negative action indices.")
    return r, a, p0


def _check_policy(target_policy: Any, n: int) -> np.ndarray:
    """(n,) integer actions or an (n, n_actions) probability matrix."""
    pi = np.asarray(target_policy)
    if pi.ndim == 1 and pi.dtype.kind in "iu":
        if pi.shape[0] != n:
            raise ValueError(
                f"target_policy must have one action per round ({n}); got {pi.shape[0]}."
            )
        if (pi < 0).any():
            raise ValueError("target_policy actions must be non-negative indices.")
        return pi.astype(np.int64)
    if pi.ndim == 1 and pi.dtype.kind == "f":
        return pi  # propensities of the logged actions (checked by the caller)
    if pi.ndim != 2 or pi.dtype.kind not in "iuf" or pi.shape[0] != n:
        raise ValueError(
            f"target_policy must be (n,) integer actions or an (n, n_actions) matrix of action "
            f"probabilities with n={n}; got {_bz._describe(pi)}."
        )
    pi = pi.astype(np.float64)
    if not np.isfinite(pi).all() or (pi < 0).any():
        raise ValueError("target_policy probabilities must be finite and >= 0.")
    sums = pi.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"target_policy rows must sum to 1; row {worst} sums to {sums[worst]!r}.")
    return pi


def _target_propensity(policy: np.ndarray, actions: np.ndarray | None) -> np.ndarray:
    """pi(a_i | x_i) of the logged actions."""
    if policy.ndim == 1 and policy.dtype.kind == "f":
        if not np.isfinite(policy).all() or (policy < 0).any() or (policy > 1).any():
            raise ValueError("target propensities must be in [0, 1].")
        return policy
    if actions is None:
        raise ValueError("actions (the logged actions) are needed with this target_policy.")
    if policy.ndim == 1:
        return (policy == actions).astype(np.float64)
    if actions.max() >= policy.shape[1]:
        raise ValueError(
            f"actions must be < n_actions={policy.shape[1]}; got {int(actions.max())}."
        )
    return policy[np.arange(actions.shape[0]), actions]


def _weights(
    rewards: Any, actions: Any, logging_propensity: Any, target_policy: Any, clip: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    r, a, p0 = _check_logged(rewards, actions, logging_propensity)
    policy = _check_policy(target_policy, r.shape[0])
    w = _target_propensity(policy, a) / p0
    if clip is not None:
        if isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not clip > 0:
            raise ValueError(f"clip must be a number > 0 or None; got {clip!r}.")
        w = np.minimum(w, float(clip))
    return r, w, a, policy


def _ess(w: np.ndarray) -> float:
    s2 = float((w**2).sum())
    return float(w.sum()) ** 2 / s2 if s2 > 0 else 0.0


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    n = v.shape[0]
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")


def ips_estimate(
    rewards: Any,
    actions: Any,
    logging_propensity: Any,
    target_policy: Any,
    *,
    clip: float | None = None,
) -> OffPolicyEstimate:
    """Inverse propensity scoring (Horvitz & Thompson 1952; Li et al. 2011 for recommenders).

    ``V = mean(w_i r_i)`` with ``w_i = pi(a_i | x_i) / pi_0(a_i | x_i)``; unbiased when the
    logging policy gives every action the target can take a positive probability. Its
    standard error is ``std(w r) / sqrt(n)``.

    Parameters
    ----------
    rewards : array (n,)
        Logged rewards (1 = click).
    actions : array (n,) of int, or None
        Logged actions (e.g. the recommended item index). Not needed when
        ``target_policy`` already gives ``pi(a_i | x_i)``.
    logging_propensity : array (n,)
        ``pi_0(a_i | x_i)`` in (0, 1].
    target_policy : array
        The new policy: ``(n,)`` integer actions (deterministic), an ``(n, n_actions)``
        probability matrix, or ``(n,)`` floats ``pi(a_i | x_i)``.
    clip : float, optional
        Cap on the weights (lower variance, biased downwards; Ionides 2008).
    """
    r, w, _, _ = _weights(rewards, actions, logging_propensity, target_policy, clip)
    value, se = _mean_se(w * r)
    return OffPolicyEstimate("IPS", value, se, r.shape[0], _ess(w))


def snips_estimate(
    rewards: Any,
    actions: Any,
    logging_propensity: Any,
    target_policy: Any,
    *,
    clip: float | None = None,
) -> OffPolicyEstimate:
    """Self-normalised IPS (Swaminathan & Joachims 2015): ``sum(w r) / sum(w)``.

    Slightly biased, consistent, and much less variable than IPS when weights are large;
    its standard error is the delta-method one, ``sqrt(sum w^2 (r - V)^2) / sum w``.
    Arguments as :func:`ips_estimate`.
    """
    r, w, _, _ = _weights(rewards, actions, logging_propensity, target_policy, clip)
    total = float(w.sum())
    if total <= 0:
        raise ValueError(
            "SNIPS is undefined: the target policy gives probability 0 to every logged action."
        )
    value = float((w * r).sum()) / total
    se = math.sqrt(float((w**2 * (r - value) ** 2).sum())) / total
    return OffPolicyEstimate("SNIPS", value, se, r.shape[0], _ess(w))


def _model_values(
    reward_model: Any, policy: np.ndarray, contexts: Any, n: int
) -> tuple[np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Per-round ``sum_a pi(a|x) r_hat(x, a)`` and a lookup ``r_hat(rows, actions)``."""
    if policy.ndim == 1 and policy.dtype.kind == "f":
        raise ValueError(
            "the direct method needs the target policy's actions or action probabilities, "
            "not only the propensities of the logged actions."
        )
    if callable(reward_model):
        ctx = np.arange(n) if contexts is None else np.asarray(contexts)
        if ctx.shape[:1] != (n,):
            raise ValueError(f"contexts must have one row per logged round ({n}).")

        def lookup(rows: np.ndarray, acts: np.ndarray) -> np.ndarray:
            out = np.asarray(reward_model(ctx[rows], acts), dtype=np.float64)
            if out.shape != rows.shape or not np.isfinite(out).all():
                raise ValueError(
                    f"reward_model must return {rows.shape[0]} finite predictions; got "
                    f"{_bz._describe(out)}."
                )
            return out

    else:
        table = np.asarray(reward_model)
        if table.ndim != 2 or table.shape[0] != n or table.dtype.kind not in "iuf":
            raise ValueError(
                f"reward_model must be a callable or an (n, n_actions) array of predicted "
                f"rewards with n={n}; got {_bz._describe(table)}."
            )
        table = table.astype(np.float64)
        if not np.isfinite(table).all():
            raise ValueError("reward_model predictions must be finite.")
        if policy.ndim == 2 and policy.shape[1] != table.shape[1]:
            raise ValueError(
                f"reward_model has {table.shape[1]} actions, target_policy {policy.shape[1]}."
            )

        def lookup(rows: np.ndarray, acts: np.ndarray) -> np.ndarray:
            if acts.size and acts.max() >= table.shape[1]:
                raise ValueError(f"actions must be < n_actions={table.shape[1]}.")
            return table[rows, acts]

    if policy.ndim == 1:
        return lookup(np.arange(n), policy), lookup
    rows, acts = np.nonzero(policy > 0)
    values = np.bincount(rows, weights=policy[rows, acts] * lookup(rows, acts), minlength=n)
    return values, lookup


def dm_estimate(
    reward_model: Any, target_policy: Any, *, contexts: Any = None
) -> OffPolicyEstimate:
    """Direct method: average the reward model's prediction for the new policy's actions,
    ``V = mean_i sum_a pi(a | x_i) r_hat(x_i, a)`` (Dudík et al. 2011).

    Parameters
    ----------
    reward_model : (n, n_actions) array or callable
        Predicted reward (CTR) of every action in every logged context, or a vectorized
        callable ``reward_model(contexts, actions) -> predictions`` called once on the
        (context, action) pairs the target policy can choose.
    target_policy : array
        ``(n,)`` integer actions or an ``(n, n_actions)`` probability matrix.
    contexts : array, optional
        What the callable receives for each logged round (default ``arange(n)``).

    Notes
    -----
    The standard error ``std(v_i) / sqrt(n)`` counts only the sampling of contexts: it is
    conditional on the reward model, whose bias the direct method inherits unmeasured.
    """
    policy = np.asarray(target_policy)
    if policy.ndim == 0:
        raise ValueError("target_policy must be an array.")
    n = policy.shape[0]
    values, _ = _model_values(reward_model, _check_policy(policy, n), contexts, n)
    value, se = _mean_se(values)
    return OffPolicyEstimate("DM", value, se, n, float(n))


def dr_estimate(
    rewards: Any,
    actions: Any,
    logging_propensity: Any,
    target_policy: Any,
    reward_model: Any,
    *,
    contexts: Any = None,
    clip: float | None = None,
) -> OffPolicyEstimate:
    """Doubly robust estimate (Dudík et al. 2011): the direct method plus an IPS
    correction of the model's residual on the logged action,
    ``v_i = sum_a pi(a|x_i) r_hat(x_i, a) + w_i (r_i - r_hat(x_i, a_i))``.

    Unbiased if either the propensities or the reward model are right; standard error
    ``std(v) / sqrt(n)``. Arguments as :func:`ips_estimate` and :func:`dm_estimate`.
    """
    r, w, a, policy = _weights(rewards, actions, logging_propensity, target_policy, clip)
    if a is None:
        raise ValueError("dr_estimate needs the logged actions.")
    n = r.shape[0]
    dm_values, lookup = _model_values(reward_model, policy, contexts, n)
    v = dm_values + w * (r - lookup(np.arange(n), a))
    value, se = _mean_se(v)
    return OffPolicyEstimate("DR", value, se, n, _ess(w))


# ============================================================================ analyze
_METRICS = ("ctr", "conversion", "revenue_per_user", "items_per_session")


def analyze(
    data: Any,
    *,
    control: Any = None,
    metrics: Sequence[str] | None = None,
    alpha: float = 0.05,
    correction: Literal["holm", "none"] = "holm",
    ctr_test: Literal["delta", "ztest"] = "delta",
    session_gap: float = _bz.DEFAULT_SESSION_GAP,
    n_items: int | None = None,
) -> ExperimentReport:
    """Test every treatment variant of an event log against the control.

    ``ctr`` (clicks / impressions) uses :func:`ratio_test` on per-user clicks and
    impressions (``ctr_test="delta"``, the default) or :func:`two_proportion_ztest` on the
    impression totals (``ctr_test="ztest"``, which treats impressions as independent and so
    rejects too often under A/A when users' CTRs differ); ``conversion`` (users with a
    purchase / users) uses :func:`two_proportion_ztest` (users are independent);
    ``revenue_per_user`` and ``items_per_session`` (per-user values of
    :func:`tastebud.metrics.business.per_user_metrics`) use :func:`welch_ttest`.
    With several treatments the p-values of each metric are Holm-corrected over the
    treatments (``correction="holm"``), which the decision then uses.

    Parameters
    ----------
    data : EventLog, DataFrame or mapping
        The event log (see :class:`tastebud.metrics.business.EventLog`).
    control : variant label, optional
        Default: the first variant in sorted order.
    metrics : sequence of str, optional
        Subset of ``("ctr", "conversion", "revenue_per_user", "items_per_session")``;
        default all (``items_per_session`` only when the log has times).
    alpha : float
        Significance level, in (0, 1).
    """
    alpha = _check_prob(alpha, "alpha")
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none'; got {correction!r}.")
    if ctr_test not in ("delta", "ztest"):
        raise ValueError(f"ctr_test must be 'delta' or 'ztest'; got {ctr_test!r}.")
    log = _bz.as_event_log(data)
    if metrics is None:
        metrics = [m for m in _METRICS if m != "items_per_session" or log.time is not None]
    unknown = [m for m in metrics if m not in _METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {_METRICS}.")
    variants = log.variants.tolist()
    if len(variants) < 2:
        raise ValueError(f"an experiment needs at least two variants; the log has {variants}.")
    if control is None:
        control = variants[0]
    elif control not in variants:
        raise ValueError(f"control {control!r} is not a variant of the log ({variants}).")
    treatments = [v for v in variants if v != control]
    pu = _bz.per_user_metrics(log, session_gap=session_gap)
    summary = _bz._summary_from(log, pu, n_items)
    if "items_per_session" in metrics and log.time is None:
        raise ValueError("items_per_session needs event times (time column).")
    experiments: list[Experiment] = []
    for metric in metrics:
        rows = []
        for t in treatments:
            labels = (str(control), str(t))
            if metric == "ctr" and ctr_test == "delta":
                e = ratio_test(
                    pu.of(control, "clicks"),
                    pu.of(control, "impressions"),
                    pu.of(t, "clicks"),
                    pu.of(t, "impressions"),
                    alpha=alpha,
                    metric=metric,
                    labels=labels,
                )
            elif metric == "ctr":
                imp_c, imp_t = summary[control, "impressions"], summary[t, "impressions"]
                e = two_proportion_ztest(
                    summary[control, "clicks"],
                    imp_c,
                    summary[t, "clicks"],
                    imp_t,
                    alpha=alpha,
                    metric=metric,
                    labels=labels,
                )
            elif metric == "conversion":
                e = two_proportion_ztest(
                    int(pu.of(control, "converted").sum()),
                    summary[control, "users"],
                    int(pu.of(t, "converted").sum()),
                    summary[t, "users"],
                    alpha=alpha,
                    metric=metric,
                    labels=labels,
                )
            else:
                field = "revenue" if metric == "revenue_per_user" else metric
                e = welch_ttest(
                    pu.of(control, field),
                    pu.of(t, field),
                    alpha=alpha,
                    metric=metric,
                    labels=labels,
                )
            rows.append(e)
        if correction == "holm" and len(rows) > 1:
            adjusted = holm([e.p_value for e in rows])
            rows = [
                dataclasses.replace(e, p_adjusted=float(p))
                for e, p in zip(rows, adjusted, strict=True)
            ]
        experiments.extend(rows)
    return ExperimentReport(tuple(experiments), summary)


# ============================================================================ simulation / demo
def simulate_ab_log(
    recommended: Mapping[str, np.ndarray],
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    *,
    users: np.ndarray | None = None,
    intercept: float = -3.5,
    slope: float = 1.0,
    purchase_rate: float = 0.08,
    mean_sessions: float = 2.0,
    random_state: int = 0,
) -> _bz.EventLog:
    """Simulate an A/B test of recommendation lists against planted preferences.

    Users are randomised uniformly over the variants (keys of ``recommended``; each value
    an ``(n_users, k)`` array of item indices, ``-1`` = empty slot, the list that variant
    would show each user). Each user has ``1 + Poisson(mean_sessions - 1)`` sessions a day
    apart; every session shows the user's list (one impression per slot) and each shown
    item is clicked with probability ``sigmoid(intercept + slope * z)``, ``z`` the user-item
    affinity ``user_factors[u] @ item_factors[i]`` standardised over all pairs; a click is a
    purchase with probability ``purchase_rate``, worth ``LogNormal(3, 0.6)``.

    Returns the :class:`~tastebud.metrics.business.EventLog` (times in seconds).
    """
    rng = np.random.default_rng(random_state)
    names = list(recommended)
    if len(names) < 2:
        raise ValueError("recommended must map at least two variant names to lists.")
    lists = [np.asarray(recommended[v]) for v in names]
    n_users, k = lists[0].shape
    if any(x.shape != (n_users, k) or x.dtype.kind not in "iu" for x in lists):
        raise ValueError("every variant needs an (n_users, k) integer array of item indices.")
    uf = np.asarray(user_factors, dtype=np.float64)
    itf = np.asarray(item_factors, dtype=np.float64)
    if uf.shape[0] != n_users or itf.ndim != 2 or uf.shape[1] != itf.shape[1]:
        raise ValueError(
            f"user_factors must be ({n_users}, f) and item_factors (n_items, f); got "
            f"{uf.shape} and {itf.shape}."
        )
    # Standardise the affinity over (a sample of) all user-item pairs.
    su = rng.integers(0, n_users, 100_000)
    si = rng.integers(0, itf.shape[0], 100_000)
    sample = np.einsum("ij,ij->i", uf[su], itf[si])
    mu, sd = float(sample.mean()), float(sample.std()) or 1.0

    arm = rng.integers(0, len(names), n_users)
    shown = np.stack(lists)[arm, np.arange(n_users)]  # (n_users, k): each user's list
    sessions = 1 + rng.poisson(max(0.0, mean_sessions - 1.0), n_users)
    # One row per (user, session, slot) with a real item.
    u_rep = np.repeat(np.arange(n_users), sessions)
    s_rep = _session_index(sessions)
    user = np.repeat(u_rep, k)
    session = np.repeat(s_rep, k)
    slot = np.tile(np.arange(k), u_rep.shape[0])
    item = shown[user, slot]
    keep = item >= 0
    user, session, slot, item = user[keep], session[keep], slot[keep], item[keep]
    z = (np.einsum("ij,ij->i", uf[user], itf[item]) - mu) / sd
    p_click = 1.0 / (1.0 + np.exp(-(intercept + slope * z)))
    clicked = rng.random(user.shape[0]) < p_click
    bought = clicked & (rng.random(user.shape[0]) < purchase_rate)
    t0 = session * 86_400.0 + 10.0 * slot
    ev_user = np.concatenate([user, user[clicked], user[bought]])
    ev_item = np.concatenate([item, item[clicked], item[bought]])
    ev_kind = np.concatenate(
        [
            np.zeros(user.shape[0], np.int8),
            np.ones(clicked.sum(), np.int8),
            np.full(bought.sum(), 2, np.int8),
        ]
    )
    ev_time = np.concatenate([t0, t0[clicked] + 3.0, t0[bought] + 60.0])
    value = np.zeros(ev_user.shape[0])
    value[ev_kind == 2] = rng.lognormal(3.0, 0.6, int(bought.sum()))
    ids = np.arange(n_users) if users is None else np.asarray(users)
    variant = np.asarray(names, dtype=object)[arm[ev_user]].astype(str)
    return _bz.EventLog.from_arrays(ids[ev_user], ev_item, variant, ev_kind, value, ev_time)


def _session_index(sessions: np.ndarray) -> np.ndarray:
    """0..s_u-1 for each user, concatenated (vectorized ``concatenate(map(arange))``)."""
    starts = np.cumsum(sessions) - sessions
    return np.arange(int(sessions.sum())) - np.repeat(starts, sessions)


def demo_ab_section(
    models: Mapping[str, Any],
    comparison: Any,
    train: Any,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    *,
    k: int = 10,
    metric: str = "ndcg",
    alpha: float = 0.05,
    random_state: int = 0,
    print_fn: Callable[[str], Any] = print,
) -> ExperimentReport:
    """The A/B section of ``tastebud demo``: Popularity against the best other model.

    The best model is the one with the highest ``metric`` in ``comparison`` (a
    :class:`tastebud.evaluation.Comparison`) other than Popularity; with Popularity alone it
    is an A/A test (both arms Popularity, which should find no difference). Each arm shows
    every training user its top-``k`` list (training items excluded); clicks and purchases
    are simulated from the planted preferences by :func:`simulate_ab_log`, and
    :func:`analyze` reads the experiment out. Prints the variant summary and the readout and
    returns the :class:`ExperimentReport`.

    ``user_factors`` / ``item_factors`` are the planted factors of
    :func:`tastebud.data.datasets.synthetic`, whose rows are the raw user / item ids.
    """
    scores = {
        name: report.means.get(metric, float("-inf"))
        for name, report in comparison.reports.items()
        if name != "Popularity" and name in models
    }
    control = models.get("Popularity")
    if control is None:
        from tastebud.models import Popularity

        control = Popularity().fit(train)
    best = max(scores, key=lambda n: scores[n]) if scores else None
    treatment = models[best] if best is not None else control
    label_b = best if best is not None else "Popularity(A/A)"
    users = np.arange(train.n_users)
    lists = {
        "Popularity": control.recommend_indices(users, k, num_threads=1)[0],
        label_b: treatment.recommend_indices(users, k, num_threads=1)[0],
    }
    user_rows = np.asarray(train.users.ids(users), dtype=np.int64)
    item_rows = np.asarray(train.items.ids(np.arange(train.n_items)), dtype=np.int64)
    log = simulate_ab_log(
        lists,
        np.asarray(user_factors)[user_rows],
        np.asarray(item_factors)[item_rows],
        users=user_rows,
        random_state=random_state,
    )
    report = analyze(log, control="Popularity", alpha=alpha, n_items=train.n_items)
    what = (
        f"Popularity vs {best} (best {metric}@{k} of the comparison)"
        if best is not None
        else "Popularity vs itself (A/A: the only model)"
    )
    print_fn("")
    print_fn(
        f"A/B experiment (simulated): {what}; {train.n_users:,} users randomised 50/50, "
        f"top-{k} lists, clicks drawn from the planted preferences"
    )
    print_fn(repr(report.variants))
    print_fn("")
    print_fn(report.summary())
    if best is None:
        print_fn(
            "(A/A test: both arms are the same model, so every 'significant' row is a false "
            "positive; each metric has a 5% chance of one.)"
        )
    return report
