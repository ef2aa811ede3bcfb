"""Business metrics from event logs: hand-computed cases, a pandas reference, bad input."""

import numpy as np
import pandas as pd
import pytest

from tastebud.metrics import business as bz

# A tiny log: A = {u1, u2}, B = {u3}. Times in seconds; session gap 1800.
#   u1: session 1 (t=0..20) sees i1,i2, clicks i1 twice, buys i1 (9.5);
#       session 2 (t=5000) sees i3, clicks i3.
#   u2: sees i1, i4, no click.
#   u3: sees i2, i5, clicks i5, buys i5 (20) and i2 (5.0)
LOG = {
    "user": ["u1", "u1", "u1", "u1", "u1", "u1", "u1", "u2", "u2", "u3", "u3", "u3", "u3", "u3"],
    "item": ["i1", "i2", "i1", "i1", "i1", "i3", "i3", "i1", "i4", "i2", "i5", "i5", "i5", "i2"],
    "variant": ["A"] * 9 + ["B"] * 5,
    "event": [
        "impression",
        "impression",
        "click",
        "click",
        "purchase",
        "impression",
        "click",
        "impression",
        "impression",
        "impression",
        "impression",
        "click",
        "purchase",
        "purchase",
    ],
    "value": [0, 0, 0, 0, 9.5, 0, 0, 0, 0, 0, 0, 0, 20.0, 5.0],
    "time": [0, 1, 10, 15, 20, 5000, 5010, 100, 101, 50, 51, 60, 70, 80],
}


def test_hand_computed_metrics():
    log = bz.EventLog.from_frame(LOG)
    assert log.variants.tolist() == ["A", "B"]
    # A: 5 impressions, 3 clicks; B: 2 impressions, 1 click
    assert bz.click_through_rate(log) == pytest.approx({"A": 3 / 5, "B": 1 / 2})
    assert bz.conversion_rate(log) == pytest.approx({"A": 1 / 2, "B": 1.0})
    assert bz.revenue_per_user(log) == pytest.approx({"A": 9.5 / 2, "B": 25.0})
    # u1: sessions {i1} and {i3} -> 1 item/session; u2: 0; u3: 1 -> A = 0.5, B = 1
    assert bz.items_per_session(log) == pytest.approx({"A": 0.5, "B": 1.0})
    # 5 distinct items in the log; A shows i1,i2,i3,i4; B shows i2,i5
    assert bz.exposure_coverage(log) == pytest.approx({"A": 4 / 5, "B": 2 / 5})
    assert bz.exposure_coverage(log, n_items=10) == pytest.approx({"A": 0.4, "B": 0.2})
    summary = bz.variant_summary(log)
    assert summary["A", "users"] == 2
    assert summary["B", "revenue"] == 25.0
    assert summary["A", "sessions"] == 3
    assert summary["A", "ctr"] == pytest.approx(0.6)
    frame = summary.to_frame()
    assert frame.loc["B", "conversion"] == 1.0
    assert "revenue_per_user" in repr(summary)
    assert summary.to_dict()["A"]["clicks"] == 3


def test_per_user_metrics():
    pu = bz.per_user_metrics(LOG)
    assert pu.users.tolist() == ["u1", "u2", "u3"]
    np.testing.assert_array_equal(pu.impressions, [3, 2, 2])
    np.testing.assert_array_equal(pu.clicks, [3, 0, 1])
    np.testing.assert_array_equal(pu.revenue, [9.5, 0, 25])
    np.testing.assert_array_equal(pu.sessions, [2, 1, 1])
    np.testing.assert_array_equal(pu.items_per_session, [1, 0, 1])
    np.testing.assert_array_equal(pu.of("A", "converted"), [1, 0])
    # a session counts distinct items: u1's two clicks on i1 are one item
    pu_imp = bz.per_user_metrics(LOG, session_event="impression")
    np.testing.assert_array_equal(pu_imp.items_per_session, [1.5, 2, 2])
    with pytest.raises(ValueError, match="unknown variant"):
        pu.of("C", "clicks")


def test_frame_arrays_and_codes_agree():
    frame = pd.DataFrame(LOG)
    a = bz.as_event_log(frame)
    b = bz.EventLog.from_arrays(
        *(np.asarray(LOG[c]) for c in bz.EventLog.__dataclass_fields__ if c in LOG)
    )
    codes = np.array([bz.EVENT_TYPES.index(e) for e in LOG["event"]])
    c = bz.EventLog.from_arrays(
        LOG["user"], LOG["item"], LOG["variant"], codes, LOG["value"], LOG["time"]
    )
    for other in (b, c):
        np.testing.assert_array_equal(a.event, other.event)
        np.testing.assert_array_equal(a.user, other.user)
    renamed = frame.rename(columns={"user": "uid", "time": "ts"})
    d = bz.as_event_log(renamed, user="uid", time="ts")
    np.testing.assert_array_equal(d.time, a.time)
    no_value = bz.as_event_log(frame.drop(columns=["value", "time"]))
    assert no_value.time is None
    assert not no_value.value.any()
    assert bz.as_event_log(a) is a
    assert "3 users" in repr(a)


def test_datetime_times_and_sessions():
    t = np.datetime64("2024-01-01T00:00:00") + np.array([0, 60, 4000, 4060], "timedelta64[s]")
    log = bz.EventLog.from_arrays(
        [1, 1, 1, 1], [1, 1, 2, 2], ["A"] * 4, ["impression", "click"] * 2, time=t
    )
    assert bz.per_user_metrics(log).sessions.tolist() == [2]
    assert bz.per_user_metrics(log, session_gap=5000).sessions.tolist() == [1]


def _sessionize_reference(user, time, gap):
    order = sorted(range(len(user)), key=lambda i: (user[i], time[i]))
    out = [0] * len(user)
    sid = -1
    for pos, i in enumerate(order):
        prev = order[pos - 1] if pos else None
        if prev is None or user[prev] != user[i] or time[i] - time[prev] > gap:
            sid += 1
        out[i] = sid
    return out


def test_sessionize_matches_reference():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 60))
        user = rng.integers(0, 5, n)
        time = rng.integers(0, 50, n).astype(float)
        got = bz.sessionize(user, time, 6.0)
        np.testing.assert_array_equal(got, _sessionize_reference(user, time, 6.0))
    assert bz.sessionize([], [], 1.0).size == 0


def _random_log(rng, n_users=60, n_items=30):
    """A random valid log and its per-user reference values computed with pandas."""
    rows = []
    variant_of = rng.choice(["ctl", "t1", "t2"], n_users)
    imps = rng.integers(1, 8, n_users)
    for u in range(n_users):
        items = rng.integers(0, n_items, imps[u])
        times = np.sort(rng.integers(0, 20_000, imps[u]))
        for i, t in zip(items, times, strict=True):
            rows.append((u, i, variant_of[u], "impression", 0.0, t))
            if rng.random() < 0.3:
                rows.append((u, i, variant_of[u], "click", 0.0, t + 5))
                if rng.random() < 0.4:
                    rows.append((u, i, variant_of[u], "purchase", float(rng.gamma(2, 5)), t + 9))
    return pd.DataFrame(rows, columns=["user", "item", "variant", "event", "value", "time"])


def test_random_logs_match_pandas_reference():
    rng = np.random.default_rng(11)
    for _ in range(5):
        df = _random_log(rng)
        pu = bz.per_user_metrics(df, session_gap=1800)
        g = df.groupby("user")
        ref_imp = g["event"].apply(lambda e: (e == "impression").sum())
        ref_rev = df[df.event == "purchase"].groupby("user")["value"].sum()
        np.testing.assert_array_equal(pu.impressions, ref_imp.to_numpy())
        np.testing.assert_allclose(pu.revenue, ref_rev.reindex(pu.users, fill_value=0.0))
        df = df.assign(session=bz.sessionize(df.user.to_numpy(), df.time.to_numpy(), 1800))
        clicks = df[df.event == "click"].drop_duplicates(["session", "item"])
        per_session = (
            clicks.groupby("session").size().reindex(np.arange(df.session.max() + 1), fill_value=0)
        )
        sess_user = df.groupby("session")["user"].first()
        ref_ips = per_session.groupby(sess_user).mean()
        np.testing.assert_allclose(pu.items_per_session, ref_ips.to_numpy())
        summary = bz.variant_summary(df)
        for v in ("ctl", "t1", "t2"):
            part = df[df.variant == v]
            ctr = (part.event == "click").sum() / (part.event == "impression").sum()
            assert summary[v, "ctr"] == pytest.approx(ctr)
            users = part.user.nunique()
            buyers = part[part.event == "purchase"].user.nunique()
            assert summary[v, "conversion"] == pytest.approx(buyers / users)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"user": []}, "empty"),
        ({"item": LOG["item"][:-1]}, "mismatched lengths"),
        ({"value": [np.nan, *LOG["value"][1:]]}, "NaN"),
        ({"time": [np.nan, *LOG["time"][1:]]}, "NaN"),
        ({"value": [-1.0, *LOG["value"][1:]]}, ">= 0"),
        ({"event": ["view", *LOG["event"][1:]]}, "unknown kind"),
        ({"event": [7] * 14}, "event codes"),
        ({"variant": ["A"] * 8 + ["B"] * 6}, "exactly one variant"),
        ({"event": ["click", *LOG["event"][1:]]}, "clicks must not exceed impressions"),
        ({"user": [None, *LOG["user"][1:]]}, "missing"),
    ],
)
def test_bad_logs(change, match):
    cols = {**LOG, **change}
    if cols["user"] == []:
        cols = {k: [] for k in cols}
    with pytest.raises(ValueError, match=match):
        bz.EventLog.from_arrays(
            np.asarray(cols["user"], dtype=object if None in cols["user"] else None),
            cols["item"],
            cols["variant"],
            cols["event"],
            cols["value"],
            cols["time"],
        )


def test_other_bad_input():
    with pytest.raises(TypeError, match="EventLog"):
        bz.as_event_log([1, 2, 3])
    with pytest.raises(ValueError, match="no column 'user'"):
        bz.as_event_log({"item": [1]})
    with pytest.raises(ValueError, match="n_items"):
        bz.exposure_coverage(LOG, n_items=3)
    with pytest.raises(ValueError, match="session_gap"):
        bz.per_user_metrics(LOG, session_gap=0)
    with pytest.raises(ValueError, match="session_event"):
        bz.per_user_metrics(LOG, session_event="view")
    with pytest.raises(ValueError, match="1-D"):
        bz.EventLog.from_arrays([[1]], [[1]], [["A"]], [["impression"]])
    no_time = {k: v for k, v in LOG.items() if k != "time"}
    with pytest.raises(ValueError, match="times"):
        bz.items_per_session(no_time)
    assert np.isnan(bz.variant_summary(no_time)["A", "sessions"])
    # a variant with purchases only has zero impressions: CTR is undefined
    only_buys = bz.EventLog.from_arrays([1, 2], [1, 1], ["A", "B"], ["impression", "purchase"])
    with pytest.raises(ValueError, match="zero impressions"):
        bz.click_through_rate(only_buys)
    assert np.isnan(bz.variant_summary(only_buys)["B", "ctr"])
