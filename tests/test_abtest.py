"""A/B tests, intervals, planning and off-policy estimators: closed forms, scipy
cross-checks, seeded simulations (tolerances of several standard errors), bad input."""

import math
import sys

import numpy as np
import pytest
from scipy import stats

from tastebud import abtest as ab
from tastebud.metrics import business as bz

# ----------------------------------------------------------------- two-proportion z-test


def test_ztest_hand_computed():
    # 100/1000 vs 130/1000: pooled p = 0.115, se0 = sqrt(.115 * .885 * (2/1000))
    e = ab.two_proportion_ztest(100, 1000, 130, 1000, metric="ctr")
    se0 = math.sqrt(0.115 * 0.885 * 0.002)
    assert e.statistic == pytest.approx(0.03 / se0, rel=1e-12)
    assert e.statistic == pytest.approx(2.10275, abs=1e-5)
    assert e.p_value == pytest.approx(2 * stats.norm.sf(0.03 / se0), rel=1e-12)
    se1 = math.sqrt(0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000)
    assert e.ci == pytest.approx((0.03 - 1.959964 * se1, 0.03 + 1.959964 * se1), rel=1e-6)
    assert e.effect == pytest.approx(0.03)
    assert e.lift == pytest.approx(0.3)
    se_log = math.sqrt(0.9 / 100 + 0.87 / 130)
    expect = (1.3 * math.exp(-1.959964 * se_log) - 1, 1.3 * math.exp(1.959964 * se_log) - 1)
    assert e.lift_ci == pytest.approx(expect, rel=1e-5)
    assert e.significant
    assert e.decision == "B higher"
    assert e.n_control == e.n_treatment == 1000


def test_ztest_matches_chi2_contingency():
    rng = np.random.default_rng(0)
    for _ in range(20):
        na, nb = rng.integers(50, 5000, 2)
        xa, xb = rng.integers(1, na), rng.integers(1, nb)
        e = ab.two_proportion_ztest(xa, na, xb, nb)
        table = [[xa, na - xa], [xb, nb - xb]]
        chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        assert e.statistic**2 == pytest.approx(chi2, rel=1e-9)
        assert e.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)


def test_ztest_one_sided_and_degenerate():
    two = ab.two_proportion_ztest(100, 1000, 130, 1000)
    larger = ab.two_proportion_ztest(100, 1000, 130, 1000, alternative="larger")
    smaller = ab.two_proportion_ztest(100, 1000, 130, 1000, alternative="smaller")
    assert larger.p_value == pytest.approx(two.p_value / 2)
    assert smaller.p_value == pytest.approx(1 - two.p_value / 2)
    assert larger.ci[1] == math.inf
    assert larger.ci[0] > two.ci[0]
    assert smaller.ci[0] == -math.inf
    assert larger.lift_ci[1] == math.inf
    zero = ab.two_proportion_ztest(0, 100, 0, 200)
    assert zero.statistic == 0.0
    assert zero.p_value == 1.0
    assert not zero.significant
    assert math.isnan(zero.lift)
    assert math.isnan(zero.lift_ci[0])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0, 0, 5, 10), {}, "trials_a must be > 0"),
        ((5, 10, 0, 0), {}, "trials_b must be > 0"),
        ((11, 10, 5, 10), {}, "must not exceed"),
        ((-1, 10, 5, 10), {}, "non-negative"),
        ((1.5, 10, 5, 10), {}, "integer"),
        ((1, 10, 5, 10), {"alpha": 0.0}, "alpha"),
        ((1, 10, 5, 10), {"alpha": 1.0}, "alpha"),
        ((1, 10, 5, 10), {"alpha": float("nan")}, "alpha"),
        ((1, 10, 5, 10), {"alternative": "greater"}, "alternative"),
    ],
)
def test_ztest_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ab.two_proportion_ztest(*args, **kwargs)
    with pytest.raises(TypeError, match="count"):
        ab.two_proportion_ztest("1", 10, 1, 10)


def test_false_positive_rate_and_power_by_simulation():
    """Under H0 the z-test rejects ~alpha; at the planned n it rejects ~power."""
    rng = np.random.default_rng(123)
    n = ab.sample_size_proportions(0.10, 0.02)
    reps = 3000
    null = [
        ab.two_proportion_ztest(a, n, b, n).p_value < 0.05
        for a, b in zip(rng.binomial(n, 0.10, reps), rng.binomial(n, 0.10, reps), strict=True)
    ]
    alt = [
        ab.two_proportion_ztest(a, n, b, n).p_value < 0.05
        for a, b in zip(rng.binomial(n, 0.10, reps), rng.binomial(n, 0.12, reps), strict=True)
    ]
    # sd of a rate over 3000 reps: 0.004 (alpha) and 0.007 (power): ~5 sd tolerances
    assert 0.03 < np.mean(null) < 0.07
    assert 0.765 < np.mean(alt) < 0.835


# ----------------------------------------------------------------- Welch


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_welch_matches_scipy(alternative):
    rng = np.random.default_rng(1)
    scipy_alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    for _ in range(10):
        a = rng.gamma(2.0, 3.0, rng.integers(5, 300))
        b = rng.gamma(2.2, 3.0, rng.integers(5, 300))
        e = ab.welch_ttest(a, b, alternative=alternative, alpha=0.1)
        ref = stats.ttest_ind(b, a, equal_var=False, alternative=scipy_alt)
        assert e.statistic == pytest.approx(ref.statistic, rel=1e-10)
        assert e.p_value == pytest.approx(ref.pvalue, rel=1e-8)
        lo, hi = ref.confidence_interval(confidence_level=0.9)
        assert e.ci == pytest.approx((lo, hi), rel=1e-8)
        assert e.effect == pytest.approx(b.mean() - a.mean())


def test_fieller_lift_interval_agrees_with_test():
    rng = np.random.default_rng(2)
    for _ in range(40):
        a = rng.normal(10.0, 4.0, 80)
        b = rng.normal(10.0 + rng.normal(0, 1.2), 4.0, 90)
        e = ab.welch_ttest(a, b)
        lo, hi = e.lift_ci
        # Fieller inverts the Welch statistic: 0 lift is outside iff the test rejects
        assert (lo > 0 or hi < 0) == (e.p_value < 0.05)
        # the bounds solve |mb - rho ma| = q sqrt(vb + rho^2 va)
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
        q = stats.t.ppf(0.975, df)
        for rho in (1 + lo, 1 + hi):
            assert abs(b.mean() - rho * a.mean()) == pytest.approx(
                q * math.sqrt(vb + rho**2 * va), rel=1e-8
            )
    # large samples: Fieller ~ delta method
    a, b = rng.normal(10, 1, 20000), rng.normal(10.5, 1, 20000)
    e = ab.welch_ttest(a, b)
    se = math.sqrt(
        b.var(ddof=1) / b.size / a.mean() ** 2
        + b.mean() ** 2 * a.var(ddof=1) / a.size / a.mean() ** 4
    )
    assert e.lift_ci == pytest.approx((e.lift - 1.96 * se, e.lift + 1.96 * se), abs=2e-4)
    # a control mean indistinguishable from 0: unbounded interval
    e0 = ab.welch_ttest(rng.normal(0, 1, 30), rng.normal(1, 1, 30))
    assert e0.lift_ci[1] == math.inf or e0.lift_ci[0] == -math.inf


def test_welch_bad_input_and_constant_samples():
    with pytest.raises(ValueError, match="finite"):
        ab.welch_ttest([1.0, np.nan, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        ab.welch_ttest([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        ab.welch_ttest([[1.0, 2.0]], [1.0, 2.0])
    with pytest.raises(TypeError, match="numeric"):
        ab.welch_ttest(["a", "b"], [1.0, 2.0])
    with pytest.raises(ValueError, match="alpha"):
        ab.welch_ttest([1.0, 2.0], [1.0, 2.0], alpha=2)
    same = ab.welch_ttest([1.0, 1.0], [1.0, 1.0])
    assert same.p_value == 1.0
    diff = ab.welch_ttest([1.0, 1.0], [2.0, 2.0])
    assert diff.p_value == 0.0
    assert diff.statistic == math.inf


# ----------------------------------------------------------------- bootstrap


def _scipy_bootstrap(data, stat, method, seed):
    res = stats.bootstrap(
        data, stat, n_resamples=20000, method=method, random_state=seed, vectorized=True
    )
    return res.confidence_interval


@pytest.mark.parametrize("method", ["percentile", "basic", "bca"])
def test_bootstrap_matches_scipy(method):
    rng = np.random.default_rng(4)
    x = rng.lognormal(0, 1, 150)
    y = rng.lognormal(0.2, 1, 170)
    ours = ab.bootstrap_ci(x, method=method, n_resamples=20000, random_state=1)
    ref = _scipy_bootstrap((x,), np.mean, method, 2)
    se = ours.std_error
    assert ours.estimate == pytest.approx(x.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.1 * se)
    assert ours.high == pytest.approx(ref.high, abs=0.1 * se)
    ours2 = ab.bootstrap_ci(x, y, method=method, n_resamples=20000, random_state=1)
    ref2 = _scipy_bootstrap(
        (x, y), lambda a, b, axis: np.mean(b, axis=axis) - np.mean(a, axis=axis), method, 2
    )
    assert ours2.estimate == pytest.approx(y.mean() - x.mean())
    assert ours2.low == pytest.approx(ref2.low, abs=0.1 * ours2.std_error)
    assert ours2.high == pytest.approx(ref2.high, abs=0.1 * ours2.std_error)
    assert ours2.std_error == pytest.approx(
        math.sqrt(x.var() / x.size + y.var() / y.size), rel=0.05
    )


def test_bootstrap_generic_statistic_and_determinism():
    rng = np.random.default_rng(5)
    x = rng.exponential(1.0, 60)
    fast = ab.bootstrap_ci(x, method="bca", random_state=3)
    generic = ab.bootstrap_ci(
        x, statistic=lambda v, axis: np.mean(v, axis=axis), method="bca", random_state=3
    )
    assert (fast.low, fast.high) == pytest.approx((generic.low, generic.high), rel=1e-12)
    again = ab.bootstrap_ci(x, method="bca", random_state=3)
    assert (again.low, again.high) == (fast.low, fast.high)
    other = ab.bootstrap_ci(x, method="bca", random_state=4)
    assert (other.low, other.high) != (fast.low, fast.high)
    med = ab.bootstrap_ci(x, statistic="median", method="bca", random_state=0)
    ref = _scipy_bootstrap((x,), np.median, "BCa", 0)
    assert med.low == pytest.approx(ref.low, abs=0.25 * med.std_error)
    assert med.high == pytest.approx(ref.high, abs=0.25 * med.std_error)


def test_bootstrap_coverage_near_nominal():
    """Seeded: 400 samples of 100 exponentials; 95% intervals should cover the mean
    ~95% of the time (sd 1.1%; percentile/basic under-cover a little on skewed data)."""
    rng = np.random.default_rng(2024)
    data = rng.exponential(1.0, (400, 100))
    for method in ("percentile", "basic", "bca"):
        covered = [
            (ci := ab.bootstrap_ci(row, method=method, n_resamples=1000, random_state=i)).low
            <= 1.0
            <= ci.high
            for i, row in enumerate(data)
        ]
        assert 0.88 <= np.mean(covered) <= 0.99, (method, np.mean(covered))
    # two-sample difference (true difference 0.5)
    data_b = rng.exponential(1.5, (300, 120))
    covered = [
        (ci := ab.bootstrap_ci(a, b, n_resamples=1000, random_state=i)).low <= 0.5 <= ci.high
        for i, (a, b) in enumerate(zip(data[:300], data_b, strict=True))
    ]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_bootstrap_test_and_bad_input():
    rng = np.random.default_rng(6)
    a, b = rng.normal(1.0, 1.0, 400), rng.normal(1.4, 1.0, 400)
    e = ab.bootstrap_test(a, b, metric="revenue", labels=("ctl", "new"))
    assert e.p_value < 0.01
    assert e.decision == "new higher"
    assert e.ci[0] > 0
    assert e.lift_ci[0] > 0
    assert e.lift == pytest.approx(b.mean() / a.mean() - 1)
    ci = ab.bootstrap_ci(a, b, confidence=0.95)
    assert e.ci == (ci.low, ci.high)
    null = ab.bootstrap_test(a, rng.normal(1.0, 1.0, 400))
    assert null.p_value > 0.05 or null.ci[0] < 0 < null.ci[1]
    with pytest.raises(ValueError, match="method"):
        ab.bootstrap_ci(a, method="studentized")
    with pytest.raises(ValueError, match="statistic"):
        ab.bootstrap_ci(a, statistic="mode")
    with pytest.raises(TypeError, match="statistic"):
        ab.bootstrap_ci(a, statistic=3)
    with pytest.raises(ValueError, match="n_resamples"):
        ab.bootstrap_ci(a, n_resamples=10)
    with pytest.raises(ValueError, match="confidence"):
        ab.bootstrap_ci(a, confidence=95)
    with pytest.raises(ValueError, match="finite"):
        ab.bootstrap_ci(np.r_[a, np.nan])


# ----------------------------------------------------------------- Holm


def test_holm():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> .02 .03 .06 .04 -> cummax
    np.testing.assert_allclose(ab.holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(ab.holm([0.2]), [0.2])
    np.testing.assert_allclose(ab.holm([0.5, 0.6]), [1.0, 1.0])
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.random(rng.integers(1, 12)) ** 3
        order = np.argsort(q)
        ref = np.empty_like(q)
        running = 0.0
        for rank, i in enumerate(order):  # the textbook step-down loop
            running = max(running, min(1.0, (q.size - rank) * q[i]))
            ref[i] = running
        np.testing.assert_allclose(ab.holm(q), ref)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ab.holm([0.1, 1.5])
    with pytest.raises(ValueError, match="NaN"):
        ab.holm([np.nan])


# ----------------------------------------------------------------- planning


def test_sample_size_fleiss_closed_form():
    # 10% -> 12%: (1.95996 sqrt(2 * .11 * .89) + 0.84162 sqrt(.09 + .1056))^2 / .02^2 = 3840.8
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    closed = (za * math.sqrt(2 * 0.11 * 0.89) + zb * math.sqrt(0.09 + 0.12 * 0.88)) ** 2 / 0.02**2
    assert closed == pytest.approx(3840.8, abs=0.1)
    assert ab.sample_size_proportions(0.10, 0.02) == 3841
    assert ab.sample_size_proportions(0.10, 0.20, relative=True) == 3841
    n = ab.sample_size_proportions(0.10, 0.02)
    assert ab.power_proportions(0.10, 0.02, n) >= 0.8 > ab.power_proportions(0.10, 0.02, n - 1)
    assert ab.sample_size_proportions(0.10, -0.02) == ab.sample_size_proportions(0.08, 0.02)
    one = ab.sample_size_proportions(0.10, 0.02, alternative="larger")
    assert one < n


def _statsmodels_normal_ind_power(h, n, alpha):
    """statsmodels NormalIndPower(ratio=1, two-sided): both tails, se = sqrt(2/n)."""
    crit = stats.norm.isf(alpha / 2)
    shift = h * math.sqrt(n / 2)
    return stats.norm.sf(crit - shift) + stats.norm.cdf(-crit - shift)


def test_arcsine_matches_statsmodels_closed_form():
    p1 = 0.5
    p2 = math.sin(math.pi / 4 + 0.1) ** 2  # Cohen's h = 0.2 exactly
    for n in (50, 393, 1000):
        assert ab.power_proportions(p1, p2 - p1, n, method="arcsine") == pytest.approx(
            _statsmodels_normal_ind_power(0.2, n, 0.05), rel=1e-12
        )
    # Cohen (1988) table 6.4.1: h = 0.2, alpha .05 two-sided, power .8 -> 392.4 per group
    assert ab.sample_size_proportions(p1, p2 - p1, method="arcsine") == 393


def test_planning_against_statsmodels():
    """Optional cross-check with statsmodels itself (not a tastebud dependency)."""
    smp = pytest.importorskip("statsmodels.stats.power")
    smprop = pytest.importorskip("statsmodels.stats.proportion")
    for p1, p2, n in [(0.1, 0.12, 3841), (0.3, 0.25, 500), (0.02, 0.025, 20000)]:
        h = smprop.proportion_effectsize(p2, p1)
        ref = smp.NormalIndPower().power(h, nobs1=n, alpha=0.05)
        assert ab.power_proportions(p1, p2 - p1, n, method="arcsine") == pytest.approx(ref)
        n_ref = smp.NormalIndPower().solve_power(h, alpha=0.05, power=0.8)
        assert ab.sample_size_proportions(p1, p2 - p1, method="arcsine") == math.ceil(n_ref)
        z, p = smprop.proportions_ztest([int(p2 * n), int(p1 * n)], [n, n])
        e = ab.two_proportion_ztest(int(p1 * n), n, int(p2 * n), n)
        assert e.statistic == pytest.approx(z)
        assert e.p_value == pytest.approx(p)
    ref_t = smp.TTestIndPower().power(0.5, nobs1=64, alpha=0.05)
    assert ab.power_means(0.5, 1.0, 64) == pytest.approx(ref_t)
    assert ab.sample_size_means(0.3, 1.0) == math.ceil(
        smp.TTestIndPower().solve_power(0.3, alpha=0.05, power=0.8)
    )


def test_minimum_detectable_effect_inverts_power():
    for n, rel, alt in [(3841, False, "two-sided"), (500, True, "larger"), (2000, True, "smaller")]:
        mde = ab.minimum_detectable_effect(0.1, n, relative=rel, alternative=alt)
        assert (mde < 0) == (alt == "smaller")
        assert ab.power_proportions(0.1, mde, n, relative=rel, alternative=alt) == pytest.approx(
            0.8, abs=1e-8
        )
    assert ab.minimum_detectable_effect(0.1, 3841) == pytest.approx(0.02, abs=2e-5)
    with pytest.raises(ValueError, match="cannot reach power"):
        ab.minimum_detectable_effect(0.5, 2, power=0.99, alpha=0.001)


def test_means_planning_known_answers():
    # Cohen's d = 0.5, alpha .05, power .8: 64 per group two-sided, 51 one-sided
    assert ab.sample_size_means(0.5, 1.0) == 64
    assert ab.sample_size_means(5.0, 10.0, alternative="larger") == 51
    # statsmodels TTestIndPower closed form: noncentral t, df = 2n - 2
    n, d = 64, 0.5
    df, nc = 2 * n - 2, d * math.sqrt(n / 2)
    crit = stats.t.isf(0.025, df)
    ref = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    assert ab.power_means(0.5, 1.0, 64) == pytest.approx(ref, rel=1e-12)
    assert ab.power_means(0.5, 1.0, 63) < 0.8 <= ab.power_means(0.5, 1.0, 64)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ab.sample_size_proportions(0.1, 0.02, power=1.0), "power"),
        (lambda: ab.sample_size_proportions(0.1, 0.02, power=0.0), "power"),
        (lambda: ab.sample_size_proportions(0.1, 0.02, alpha=-0.1), "alpha"),
        (lambda: ab.sample_size_proportions(0.0, 0.02), "baseline"),
        (lambda: ab.sample_size_proportions(0.1, 0.0), "non-zero"),
        (lambda: ab.sample_size_proportions(0.9, 0.2), "outside"),
        (lambda: ab.sample_size_proportions(0.1, -0.02, alternative="larger"), "opposite"),
        (lambda: ab.sample_size_proportions(0.1, 0.02, method="exact"), "method"),
        (lambda: ab.power_proportions(0.1, 0.02, 0), "n_per_variant"),
        (lambda: ab.power_means(0.5, 0.0, 10), "std"),
        (lambda: ab.sample_size_means(0.5, 1.0, power=1.5), "power"),
        (lambda: ab.minimum_detectable_effect(0.1, 100, power=float("nan")), "power"),
    ],
)
def test_planning_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------- off-policy estimation


def _bandit(n, seed, n_actions=6):
    """Contexts with known CTR per action, a softmax logging policy, and a new policy."""
    rng = np.random.default_rng(seed)
    q = 1 / (1 + np.exp(-rng.normal(-2.5, 0.8, (n, n_actions))))  # true CTR per (x, a)
    scores = rng.normal(0, 1, (n, n_actions))
    logging = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    noisy = q + rng.normal(0, 0.05, q.shape)
    target = np.full((n, n_actions), 0.1 / (n_actions - 1))
    target[np.arange(n), noisy.argmax(1)] = 0.9  # 90% greedy on a noisy CTR model
    u = rng.random(n)[:, None]
    actions = (u > logging.cumsum(1)).sum(1)
    actions = np.minimum(actions, n_actions - 1)
    rewards = (rng.random(n) < q[np.arange(n), actions]).astype(float)
    truth = float((target * q).sum(1).mean())
    return q, logging[np.arange(n), actions], actions, rewards, target, truth


def test_off_policy_estimates_recover_true_ctr():
    q, p0, actions, rewards, target, truth = _bandit(40_000, seed=7)
    logged_ctr = rewards.mean()
    assert truth > logged_ctr + 0.05  # the new policy is much better than the logging one
    estimates = [
        ab.ips_estimate(rewards, actions, p0, target),
        ab.snips_estimate(rewards, actions, p0, target),
        ab.dr_estimate(rewards, actions, p0, target, q * 0.8),  # biased model, DR still ok
    ]
    for est in estimates:
        assert abs(est.value - truth) < 5 * est.std_error, str(est)
        assert est.std_error < 0.01
        lo, hi = est.ci(0.001)
        assert lo < truth < hi
        assert 0 < est.effective_sample_size < est.n
    exact = ab.dm_estimate(q, target)
    assert exact.value == pytest.approx(truth, rel=1e-12)
    biased = ab.dm_estimate(q * 0.8, target)
    assert biased.value == pytest.approx(0.8 * truth)  # DM inherits the model's bias
    via_callable = ab.dm_estimate(lambda ctx, a: q[ctx, a], target)
    assert via_callable.value == pytest.approx(exact.value, rel=1e-12)
    assert "IPS" in str(estimates[0])


def test_off_policy_standard_errors_are_calibrated():
    """Over 300 seeded replications, the reported SE matches the spread of the estimates."""
    values = {"IPS": [], "SNIPS": [], "DR": []}
    ses = {"IPS": [], "SNIPS": [], "DR": []}
    for seed in range(300):
        q, p0, actions, rewards, target, _ = _bandit(1500, seed=1000 + seed)
        for est in (
            ab.ips_estimate(rewards, actions, p0, target),
            ab.snips_estimate(rewards, actions, p0, target),
            ab.dr_estimate(rewards, actions, p0, target, q * 0.8),
        ):
            values[est.method].append(est.value)
            ses[est.method].append(est.std_error)
    for method in values:
        ratio = np.std(values[method]) / np.mean(ses[method])
        assert 0.8 < ratio < 1.25, (method, ratio)


def test_off_policy_policy_forms_and_clip():
    q, p0, actions, rewards, target, _ = _bandit(5000, seed=3)
    greedy = target.argmax(1)
    one_hot = np.eye(target.shape[1])[greedy]
    a = ab.ips_estimate(rewards, actions, p0, greedy)
    b = ab.ips_estimate(rewards, actions, p0, one_hot)
    c = ab.ips_estimate(rewards, None, p0, (greedy == actions).astype(float))
    assert a.value == b.value == c.value
    assert ab.dm_estimate(q, greedy).value == pytest.approx(ab.dm_estimate(q, one_hot).value)
    clipped = ab.ips_estimate(rewards, actions, p0, greedy, clip=2.0)
    assert clipped.value <= a.value
    assert clipped.std_error < a.std_error
    dr = ab.dr_estimate(rewards, actions, p0, greedy, lambda ctx, act: q[ctx, act])
    assert dr.method == "DR"


def test_off_policy_bad_input():
    r = np.array([1.0, 0.0, 1.0])
    a = np.array([0, 1, 1])
    p0 = np.array([0.5, 0.5, 0.25])
    pi = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ab.ips_estimate(r, a, [0.5, 0.0, 0.25], pi)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ab.ips_estimate(r, a, [0.5, 1.5, 0.25], pi)
    with pytest.raises(ValueError, match="one value per logged round"):
        ab.ips_estimate(r, a, [0.5, 0.5], pi)
    with pytest.raises(ValueError, match="sum to 1"):
        ab.ips_estimate(r, a, p0, pi * 0.9)
    with pytest.raises(ValueError, match="actions"):
        ab.ips_estimate(r, None, p0, pi)
    with pytest.raises(ValueError, match="actions"):
        ab.ips_estimate(r, [0, 1], p0, pi)
    with pytest.raises(ValueError, match="n_actions"):
        ab.ips_estimate(r, np.array([0, 1, 5]), p0, pi)
    with pytest.raises(ValueError, match="finite"):
        ab.ips_estimate([1.0, np.nan, 0.0], a, p0, pi)
    with pytest.raises(ValueError, match="clip"):
        ab.ips_estimate(r, a, p0, pi, clip=0)
    with pytest.raises(ValueError, match="undefined"):
        ab.snips_estimate(r, a, p0, np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="reward_model"):
        ab.dm_estimate(np.ones((2, 2)), pi)
    with pytest.raises(ValueError, match="reward_model must return"):
        ab.dm_estimate(lambda ctx, act: np.ones(1), pi)
    with pytest.raises(ValueError, match="direct method needs"):
        ab.dm_estimate(np.ones((3, 2)), np.array([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="logged actions"):
        ab.dr_estimate(r, None, p0, np.array([1.0, 0.0, 1.0]), np.ones((3, 2)))


# ----------------------------------------------------------------- event logs end to end


def _oracle_and_random_lists(rng, n_users, n_items, k, uf, itf):
    affinity = uf @ itf.T
    oracle = np.argsort(-affinity, axis=1)[:, :k]
    random = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    return oracle, random


def test_simulated_experiment_end_to_end():
    rng = np.random.default_rng(8)
    n_users, n_items, k = 3000, 200, 10
    uf, itf = rng.normal(0, 1, (n_users, 4)), rng.normal(0, 0.5, (n_items, 4))
    oracle, random = _oracle_and_random_lists(rng, n_users, n_items, k, uf, itf)
    log = ab.simulate_ab_log(
        {"random": random, "oracle": oracle, "same": random}, uf, itf, random_state=1
    )
    again = ab.simulate_ab_log(
        {"random": random, "oracle": oracle, "same": random}, uf, itf, random_state=1
    )
    np.testing.assert_array_equal(log.event, again.event)
    report = ab.analyze(log, control="random", alpha=0.05)
    assert len(report) == 8  # 4 metrics x 2 treatments
    ctr = report["ctr", "oracle"]
    assert ctr.significant
    assert ctr.effect > 0
    assert ctr.p_adjusted is not None
    # the Holm-adjusted p-values are holm() of the raw ones, per metric
    raw = [report["revenue_per_user", t].p_value for t in ("oracle", "same")]
    adj = [report["revenue_per_user", t].p_adjusted for t in ("oracle", "same")]
    np.testing.assert_allclose(adj, ab.holm(raw))
    summary = bz.variant_summary(log)
    assert ctr.control_value == pytest.approx(summary["random", "ctr"])
    assert report["conversion", "oracle"].treatment_value == pytest.approx(
        summary["oracle", "conversion"]
    )
    ips = report["items_per_session", "oracle"]
    assert ips.treatment_value == pytest.approx(summary["oracle", "items_per_session"])
    assert (
        report["items_per_session", "same"].p_adjusted
        >= report["items_per_session", "same"].p_value
    )
    text = report.summary()
    assert "ctr" in text
    assert "oracle higher" in text
    assert "p_holm" in text
    frame = report.to_frame()
    assert len(frame) == 8
    assert {"ci_low", "lift_ci_high", "decision"} <= set(frame.columns)
    with pytest.raises(KeyError, match="matches 2"):
        report["ctr"]
    with pytest.raises(ValueError, match="control"):
        ab.analyze(log, control="nope")
    with pytest.raises(ValueError, match="unknown metric"):
        ab.analyze(log, metrics=["ndcg"])
    with pytest.raises(ValueError, match="correction"):
        ab.analyze(log, correction="bonferroni")


def test_analyze_two_variants_and_no_time():
    rng = np.random.default_rng(9)
    n = 400
    arrays = {
        "user": np.repeat(np.arange(n), 2),
        "item": rng.integers(0, 50, 2 * n),
        "variant": np.repeat(np.where(np.arange(n) % 2, "B", "A"), 2),
        "event": np.tile(["impression", "impression"], n),
    }
    clicks = rng.random(n) < np.where(np.arange(n) % 2, 0.3, 0.2)
    log = bz.EventLog.from_arrays(
        np.r_[arrays["user"], np.arange(n)[clicks]],
        np.r_[arrays["item"], np.zeros(clicks.sum(), int)],
        np.r_[arrays["variant"], np.where(np.arange(n) % 2, "B", "A")[clicks]],
        np.r_[arrays["event"], np.full(clicks.sum(), "click")],
    )
    report = ab.analyze(log)  # control defaults to "A"; no times: no items_per_session
    assert [e.metric for e in report] == ["ctr", "conversion", "revenue_per_user"]
    assert report["ctr"].p_adjusted is None
    assert report["ctr"].control == "A"
    assert report["ctr"].method == "delta-method z-test"
    z = ab.analyze(log, ctr_test="ztest")["ctr"]
    assert z.method == "two-proportion z-test"
    assert z.treatment_value == pytest.approx(report["ctr"].treatment_value)
    with pytest.raises(ValueError, match="ctr_test"):
        ab.analyze(log, ctr_test="chi2")
    with pytest.raises(ValueError, match="times"):
        ab.analyze(log, metrics=["items_per_session"])
    one = bz.EventLog.from_arrays([1], [1], ["A"], ["impression"])
    with pytest.raises(ValueError, match="two variants"):
        ab.analyze(one)


def test_experiment_summary_and_frame(monkeypatch):
    e = ab.two_proportion_ztest(100, 1000, 130, 1000, metric="ctr", labels=("pop", "als"))
    text = e.summary()
    for part in (
        "ctr: als vs pop",
        "effect +0.03",
        "95% CI",
        "lift   +30.0%",
        "p = 0.0355",
        "significant at alpha=0.05: als higher",
    ):
        assert part in text, text
    assert str(e) == text
    row = e.to_frame()
    assert row.loc[0, "p_value"] == e.p_value
    assert bool(row.loc[0, "significant"])
    d = e.to_dict()
    assert d["ci_low"] == e.ci[0]
    assert d["decision"] == "als higher"
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        e.to_frame()


def test_demo_ab_section():
    from tastebud.data import datasets, split
    from tastebud.evaluation import compare
    from tastebud.models import Popularity
    from tastebud.models.base import Recommender

    data = datasets.synthetic(300, 120, 6000, random_state=0)
    train, test = split.random_holdout(data.interactions, test_fraction=0.2, random_state=0)

    class Planted(Recommender):
        """Scores by the planted factors (a perfect personalised model, for the test)."""

        _factor_scoring = True
        _fitted_arrays = ("u_", "v_")

        def _fit(self, interactions):
            self.u_ = data.user_factors.astype(np.float32)
            self.v_ = data.item_factors.astype(np.float32)

        def _user_embeddings(self, user_indices, rows):
            return self.u_[user_indices]

        def _item_embeddings(self):
            return self.v_

    models = {"Popularity": Popularity(), "Planted": Planted()}
    result = compare(models, train, test, k=10, metrics=("ndcg",), verbose=False)
    lines = []
    report = ab.demo_ab_section(
        models, result, train, data.user_factors, data.item_factors, print_fn=lines.append
    )
    out = "\n".join(lines)
    assert "Popularity vs Planted" in out
    assert "ctr" in out
    assert report["ctr"].treatment == "Planted"
    assert report["ctr"].effect > 0
    aa = ab.demo_ab_section(
        {"Popularity": models["Popularity"]},
        result,
        train,
        data.user_factors,
        data.item_factors,
        print_fn=lines.append,
    )
    assert aa["ctr"].treatment == "Popularity(A/A)"


def test_aa_experiments_reject_at_about_alpha():
    """The whole pipeline (simulate -> event log -> analyze) on A/A tests: each metric's
    false-positive rate should be ~alpha. 150 seeded replications; sd of the pooled rate
    over 4 metrics ~0.9%, tolerance ~3.5 sd."""
    rng = np.random.default_rng(10)
    n_users, n_items = 400, 100
    uf, itf = rng.normal(0, 1, (n_users, 4)), rng.normal(0, 0.5, (n_items, 4))
    lists = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :10]
    rejected = [
        [
            e.p_value < 0.05
            for e in ab.analyze(
                ab.simulate_ab_log({"a": lists, "b": lists}, uf, itf, random_state=seed),
                control="a",
            )
        ]
        for seed in range(150)
    ]
    assert 0.02 < np.mean(rejected) < 0.085


def test_ratio_test_delta_method():
    rng = np.random.default_rng(12)
    # one impression per user: the delta method is Welch's statistic on the 0/1 clicks
    xa, xb = (rng.random(500) < 0.1).astype(float), (rng.random(600) < 0.13).astype(float)
    e = ab.ratio_test(xa, np.ones(500), xb, np.ones(600), metric="ctr")
    w = ab.welch_ttest(xa, xb)
    assert e.statistic == pytest.approx(w.statistic, rel=1e-12)
    assert e.effect == pytest.approx(xb.mean() - xa.mean())
    assert e.n_control == 500
    # clustered impressions: SE of the pooled ratio matches its spread over replications
    ratios, ses = [], []
    for _ in range(400):
        imp = rng.integers(1, 30, 300).astype(float)
        ctr_u = rng.beta(1, 12, 300)  # users differ in CTR
        clicks = rng.binomial(imp.astype(int), ctr_u).astype(float)
        r = ab.ratio_test(clicks, imp, clicks, imp)
        ratios.append(clicks.sum() / imp.sum())
        ses.append((r.ci[1] - r.ci[0]) / (2 * 1.959964) / math.sqrt(2))  # two equal arms
    assert 0.85 < np.std(ratios) / np.mean(ses) < 1.15
    with pytest.raises(ValueError, match="one value per user"):
        ab.ratio_test([1.0, 2.0, 3.0], [1.0, 1.0], [1.0, 2.0], [3.0, 3.0])
    with pytest.raises(ValueError, match="positive total"):
        ab.ratio_test([0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [3.0, 3.0])
