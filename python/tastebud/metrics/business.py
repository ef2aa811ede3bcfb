"""Business metrics from an impression / click / purchase event log.

Product teams judge a recommender online by what users do with its lists: click-through
rate (CTR), conversion, revenue and engagement. This module turns a raw event log into
those numbers, per experiment variant, without Python loops over events (everything is
``np.unique`` / ``np.bincount`` / sorting). The statistical comparison of variants lives in
:mod:`tastebud.abtest`.

The unit of analysis is the **user** (the unit an A/B test randomises): every user must
belong to exactly one variant, and per-user aggregates (:class:`UserMetrics`) are what the
tests in :mod:`tastebud.abtest` compare.

Definitions (per variant; "users" are the distinct users with any event in that variant):

- ``ctr``: clicks / impressions (impression-weighted).
- ``conversion``: users with at least one purchase / users.
- ``revenue_per_user``: sum of purchase ``value`` / users (users without purchases count 0).
- ``items_per_session``: distinct items clicked in a session, averaged over a user's
  sessions, then over users (each user weighs the same, as in the Welch test of
  :func:`tastebud.abtest.analyze`). A session is a run of one user's events with no gap
  longer than ``session_gap`` (same unit as ``time``; seconds for datetime64).
- ``coverage``: distinct items with an impression / catalogue size (``n_items``, else the
  number of distinct items in the whole log).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "EVENT_TYPES",
    "EventLog",
    "UserMetrics",
    "VariantSummary",
    "as_event_log",
    "click_through_rate",
    "conversion_rate",
    "exposure_coverage",
    "items_per_session",
    "per_user_metrics",
    "revenue_per_user",
    "sessionize",
    "variant_summary",
]

#: Event kinds, in the order of their integer codes (0, 1, 2).
EVENT_TYPES = ("impression", "click", "purchase")
IMPRESSION, CLICK, PURCHASE = 0, 1, 2

#: Default inactivity gap that ends a session: 30 minutes in seconds.
DEFAULT_SESSION_GAP = 1800.0


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:120]


def _column(values: Any, name: str, n: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array; got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(
            f"{name} must have one value per event ({n}); got {arr.shape[0]} (mismatched lengths)."
        )
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} must not contain NaN; got {int(np.isnan(arr).sum())} NaN.")
    if arr.dtype.kind == "O":
        # None / NaN in object columns (NaN is the only value unequal to itself)
        missing = np.equal(arr, None) | (arr != arr)
        if missing.any():
            raise ValueError(
                f"{name} must not contain missing values (None/NaN); got {int(missing.sum())}."
            )
    return arr


def _event_codes(event: Any, n: int) -> np.ndarray:
    arr = _column(event, "event", n)
    uniq, inverse = np.unique(arr, return_inverse=True)
    if arr.dtype.kind in "iu":
        bad = [v for v in uniq.tolist() if v not in (0, 1, 2)]
        if bad:
            raise ValueError(
                f"event codes must be 0 (impression), 1 (click) or 2 (purchase); got {bad[:5]}."
            )
        return arr.astype(np.int8)
    if arr.dtype.kind not in "UO":
        raise TypeError(
            f"event must hold strings {EVENT_TYPES} or integer codes 0/1/2; got dtype {arr.dtype}."
        )
    names = [str(v).lower() for v in uniq.tolist()]
    unknown = [v for v in names if v not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"event must be one of {EVENT_TYPES}; got unknown kind(s) {unknown[:5]}.")
    table = np.array([EVENT_TYPES.index(v) for v in names], dtype=np.int8)
    return table[inverse]


def _as_time(time: Any, n: int) -> np.ndarray | None:
    if time is None:
        return None
    arr = _column(time, "time", n)
    if arr.dtype.kind == "M":
        if np.isnat(arr).any():
            raise ValueError("time must not contain NaT.")
        return (arr - np.datetime64(0, "s")) / np.timedelta64(1, "s")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"time must be numeric or datetime64; got dtype {arr.dtype}.")
    out = arr.astype(np.float64)
    if not np.isfinite(out).all():
        raise ValueError("time must be finite.")
    return out


@dataclass(frozen=True)
class EventLog:
    """A validated event log, encoded as integer codes.

    Build with :meth:`from_arrays` or :meth:`from_frame` (or :func:`as_event_log`).

    Attributes
    ----------
    user, item, variant : ndarray of int64
        Per-event codes into ``users``, ``items``, ``variants``.
    event : ndarray of int8
        0 = impression, 1 = click, 2 = purchase (:data:`EVENT_TYPES`).
    value : ndarray of float64
        Revenue of each event (only purchases are summed).
    time : ndarray of float64 or None
        Event times (datetime64 converted to Unix seconds); needed for sessions.
    users, items, variants : ndarray
        The distinct raw ids (sorted), so ``users[user]`` is each event's raw user id.
    user_variant : ndarray of int64
        Variant code of each user (each user is in exactly one variant).
    """

    user: np.ndarray = field(repr=False)
    item: np.ndarray = field(repr=False)
    variant: np.ndarray = field(repr=False)
    event: np.ndarray = field(repr=False)
    value: np.ndarray = field(repr=False)
    time: np.ndarray | None = field(repr=False)
    users: np.ndarray = field(repr=False)
    items: np.ndarray = field(repr=False)
    variants: np.ndarray
    user_variant: np.ndarray = field(repr=False)

    @property
    def n_events(self) -> int:
        return int(self.event.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.users.shape[0])

    def __repr__(self) -> str:
        return (
            f"EventLog({self.n_events} events, {self.n_users} users, {self.items.shape[0]} "
            f"items, variants={self.variants.tolist()})"
        )

    @classmethod
    def from_arrays(
        cls,
        user: Any,
        item: Any,
        variant: Any,
        event: Any,
        value: Any = None,
        time: Any = None,
    ) -> EventLog:
        """Validate and encode one array per column (one row per event).

        Parameters
        ----------
        user, item, variant : array-like
            Raw ids (any sortable type). Each user must appear in exactly one variant
            (user-level randomisation); a user seen in two variants raises ``ValueError``.
        event : array-like of str or int
            ``"impression"``, ``"click"``, ``"purchase"`` (case-insensitive) or codes 0/1/2.
        value : array-like of float, optional
            Revenue per event (purchases); ``None`` means 0 everywhere.
        time : array-like of numbers or datetime64, optional
            Event times, needed only for session metrics.

        Raises
        ------
        ValueError
            Empty log, mismatched lengths, NaN, unknown event kinds, negative values, a user
            in several variants, or a user with more clicks than impressions.
        """
        u = _column(user, "user", None)
        n = u.shape[0]
        if n == 0:
            raise ValueError("the event log is empty; need at least one impression.")
        it = _column(item, "item", n)
        var = _column(variant, "variant", n)
        ev = _event_codes(event, n)
        if value is None:
            val = np.zeros(n, dtype=np.float64)
        else:
            raw = _column(value, "value", n)
            if raw.dtype.kind not in "iufb":
                raise TypeError(f"value must be numeric; got dtype {raw.dtype}.")
            val = raw.astype(np.float64)
            if not np.isfinite(val).all():
                raise ValueError("value must be finite.")
            if (val < 0).any():
                raise ValueError(f"value must be >= 0 (revenue); got minimum {val.min()!r}.")
        t = _as_time(time, n)
        users, ucode = np.unique(u, return_inverse=True)
        items, icode = np.unique(it, return_inverse=True)
        variants, vcode = np.unique(var, return_inverse=True)
        ucode = ucode.astype(np.int64).ravel()
        vcode = vcode.astype(np.int64).ravel()
        n_users, n_var = users.shape[0], variants.shape[0]
        # Each user in exactly one variant: distinct (user, variant) pairs == users.
        pairs = np.unique(ucode * n_var + vcode)
        pair_user = pairs // n_var
        if pairs.shape[0] != n_users:
            multi = np.flatnonzero(np.bincount(pair_user, minlength=n_users) > 1)
            raise ValueError(
                f"every user must be in exactly one variant (user-level randomisation); "
                f"{multi.size} user(s) appear in several variants, e.g. "
                f"{users[multi[:5]].tolist()}."
            )
        user_variant = np.empty(n_users, dtype=np.int64)
        user_variant[pair_user] = pairs % n_var
        imp = np.bincount(ucode, weights=ev == IMPRESSION, minlength=n_users)
        clk = np.bincount(ucode, weights=ev == CLICK, minlength=n_users)
        over = np.flatnonzero(clk > imp)
        if over.size:
            raise ValueError(
                f"clicks must not exceed impressions; {over.size} user(s) have more clicks "
                f"than impressions, e.g. user {users[over[0]]!r}: {int(clk[over[0]])} clicks, "
                f"{int(imp[over[0]])} impressions."
            )
        return cls(
            ucode,
            icode.astype(np.int64).ravel(),
            vcode,
            ev,
            val,
            t,
            users,
            items,
            variants,
            user_variant,
        )

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        user: str = "user",
        item: str = "item",
        variant: str = "variant",
        event: str = "event",
        value: str | None = "value",
        time: str | None = "time",
    ) -> EventLog:
        """Read the columns of a DataFrame (or any mapping of column name -> array).

        ``value`` and ``time`` are optional: a missing column (or ``None``) is skipped.
        """
        columns = list(frame.keys()) if isinstance(frame, Mapping) else list(frame.columns)
        for name in (user, item, variant, event):
            if name not in columns:
                raise ValueError(f"the frame has no column {name!r}; columns are {columns}.")

        def get(name: str | None) -> Any:
            if name is None or name not in columns:
                return None
            col = frame[name]
            return col.to_numpy() if hasattr(col, "to_numpy") else col

        return cls.from_arrays(
            get(user), get(item), get(variant), get(event), get(value), get(time)
        )


def as_event_log(data: Any, **columns: Any) -> EventLog:
    """An :class:`EventLog` from an EventLog, a DataFrame or a mapping of columns.

    Keyword arguments rename columns (see :meth:`EventLog.from_frame`).
    """
    if isinstance(data, EventLog):
        if columns:
            raise ValueError("column names are only meaningful for a DataFrame or mapping.")
        return data
    if isinstance(data, Mapping) or hasattr(data, "columns"):
        return EventLog.from_frame(data, **columns)
    raise TypeError(
        "data must be an EventLog, a pandas DataFrame or a mapping of column name -> array; "
        f"got {_describe(data)}."
    )


def _check_gap(session_gap: Any) -> float:
    if (
        isinstance(session_gap, bool)
        or not isinstance(session_gap, (int, float, np.integer, np.floating))
        or not np.isfinite(session_gap)
        or session_gap <= 0
    ):
        raise ValueError(f"session_gap must be a finite number > 0; got {session_gap!r}.")
    return float(session_gap)


def sessionize(user: Any, time: Any, session_gap: float = DEFAULT_SESSION_GAP) -> np.ndarray:
    """Session index of every event: a new session starts at a user's first event and after
    every gap longer than ``session_gap`` between consecutive events of that user.

    Sessions are numbered ``0..n_sessions-1`` in (user, time) order. One sort, no loops.
    """
    gap = _check_gap(session_gap)
    u = _column(user, "user", None)
    t = _as_time(time, u.shape[0])
    if t is None:
        raise ValueError("sessionize needs time.")
    if u.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((t, u))
    us, ts = u[order], t[order]
    new = np.empty(u.shape[0], dtype=bool)
    new[0] = True
    new[1:] = (us[1:] != us[:-1]) | (np.diff(ts) > gap)
    sessions = np.empty(u.shape[0], dtype=np.int64)
    sessions[order] = np.cumsum(new) - 1
    return sessions


@dataclass(frozen=True)
class UserMetrics:
    """Per-user aggregates of an event log (one entry per user, in ``users`` order).

    ``items_per_session`` and ``sessions`` are NaN / 0 when the log has no times.
    """

    users: np.ndarray
    variant: np.ndarray
    variants: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    purchases: np.ndarray
    revenue: np.ndarray
    sessions: np.ndarray
    items_per_session: np.ndarray

    @property
    def converted(self) -> np.ndarray:
        """1.0 for users with at least one purchase, else 0.0."""
        return (self.purchases > 0).astype(np.float64)

    def of(self, variant: Any, metric: str) -> np.ndarray:
        """The per-user values of ``metric`` (a field name or ``"converted"``) in ``variant``."""
        code = _variant_code(self.variants, variant)
        values = getattr(self, metric)
        return np.asarray(values)[self.variant == code]


def _variant_code(variants: np.ndarray, variant: Any) -> int:
    hits = np.flatnonzero(variants == variant)
    if hits.size != 1:
        raise ValueError(f"unknown variant {variant!r}; the log has {variants.tolist()}.")
    return int(hits[0])


def per_user_metrics(
    data: Any, *, session_gap: float = DEFAULT_SESSION_GAP, session_event: str = "click"
) -> UserMetrics:
    """Per-user impressions, clicks, purchases, revenue, sessions and items per session.

    ``items_per_session`` counts the distinct items with a ``session_event`` event in each
    session, averaged over the user's sessions.
    """
    log = as_event_log(data)
    gap = _check_gap(session_gap)
    if session_event not in EVENT_TYPES:
        raise ValueError(f"session_event must be one of {EVENT_TYPES}; got {session_event!r}.")
    n = log.n_users
    ev = log.event
    counts = [np.bincount(log.user, weights=ev == code, minlength=n) for code in range(3)]
    revenue = np.bincount(log.user, weights=np.where(ev == PURCHASE, log.value, 0.0), minlength=n)
    if log.time is None:
        sessions = np.zeros(n)
        ips = np.full(n, np.nan)
    else:
        sid = sessionize(log.user, log.time, gap)
        n_sessions = int(sid.max()) + 1
        session_user = np.empty(n_sessions, dtype=np.int64)
        session_user[sid] = log.user
        sessions = np.bincount(session_user, minlength=n).astype(np.float64)
        chosen = ev == EVENT_TYPES.index(session_event)
        n_items = log.items.shape[0]
        pairs = np.unique(sid[chosen] * n_items + log.item[chosen])
        items_in = np.bincount(pairs // n_items, minlength=n_sessions).astype(np.float64)
        ips = np.bincount(session_user, weights=items_in, minlength=n) / sessions
    return UserMetrics(
        log.users,
        log.user_variant,
        log.variants,
        counts[IMPRESSION],
        counts[CLICK],
        counts[PURCHASE],
        revenue,
        sessions,
        ips,
    )


def _by_variant(log: EventLog, values: np.ndarray) -> np.ndarray:
    return np.bincount(log.user_variant, weights=values, minlength=log.variants.shape[0])


def _as_dict(log: EventLog, values: np.ndarray) -> dict[Any, float]:
    return {v: float(x) for v, x in zip(log.variants.tolist(), values, strict=True)}


def _variant_users(log: EventLog) -> np.ndarray:
    return np.bincount(log.user_variant, minlength=log.variants.shape[0]).astype(np.float64)


def click_through_rate(data: Any) -> dict[Any, float]:
    """CTR (clicks / impressions) per variant.

    Raises ``ValueError`` when a variant has no impressions (its CTR is undefined).
    """
    log = as_event_log(data)
    imp = np.bincount(log.variant, weights=log.event == IMPRESSION, minlength=len(log.variants))
    clk = np.bincount(log.variant, weights=log.event == CLICK, minlength=len(log.variants))
    zero = np.flatnonzero(imp == 0)
    if zero.size:
        raise ValueError(
            f"CTR is undefined for variant(s) with zero impressions: {log.variants[zero].tolist()}."
        )
    return _as_dict(log, clk / imp)


def conversion_rate(data: Any) -> dict[Any, float]:
    """Share of users with at least one purchase, per variant."""
    log = as_event_log(data)
    bought = np.bincount(log.user, weights=log.event == PURCHASE, minlength=log.n_users) > 0
    return _as_dict(log, _by_variant(log, bought.astype(np.float64)) / _variant_users(log))


def revenue_per_user(data: Any) -> dict[Any, float]:
    """Total purchase value / users, per variant (users without purchases count 0)."""
    log = as_event_log(data)
    value = np.where(log.event == PURCHASE, log.value, 0.0)
    total = np.bincount(log.variant, weights=value, minlength=len(log.variants))
    return _as_dict(log, total / _variant_users(log))


def items_per_session(
    data: Any, *, session_gap: float = DEFAULT_SESSION_GAP, session_event: str = "click"
) -> dict[Any, float]:
    """Distinct items engaged with per session (user mean, then mean over users), per
    variant. Needs event times."""
    log = as_event_log(data)
    if log.time is None:
        raise ValueError("items_per_session needs event times (time column).")
    per_user = per_user_metrics(log, session_gap=session_gap, session_event=session_event)
    return _as_dict(log, _by_variant(log, per_user.items_per_session) / _variant_users(log))


def exposure_coverage(data: Any, *, n_items: int | None = None) -> dict[Any, float]:
    """Distinct items shown (with an impression) / catalogue size, per variant.

    ``n_items`` defaults to the number of distinct items in the whole log.
    """
    log = as_event_log(data)
    n_seen = log.items.shape[0]
    if n_items is None:
        n_items = n_seen
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < n_seen:
        raise ValueError(
            f"n_items must be an int >= the {n_seen} distinct items in the log; got {n_items!r}."
        )
    shown = log.event == IMPRESSION
    pairs = np.unique(log.variant[shown] * n_seen + log.item[shown])
    distinct = np.bincount(pairs // n_seen, minlength=len(log.variants))
    return _as_dict(log, distinct / float(n_items))


@dataclass(frozen=True)
class VariantSummary:
    """Per-variant business metrics (rows = variants, columns = metrics)."""

    variants: list[Any]
    columns: list[str]
    values: np.ndarray

    def __getitem__(self, key: tuple[Any, str]) -> float:
        variant, column = key
        return float(self.values[self.variants.index(variant), self.columns.index(column)])

    def to_dict(self) -> dict[Any, dict[str, float]]:
        return {
            v: dict(zip(self.columns, map(float, row), strict=True))
            for v, row in zip(self.variants, self.values, strict=True)
        }

    def to_frame(self) -> Any:
        """A ``pandas.DataFrame`` indexed by variant."""
        pd = _pandas()
        return pd.DataFrame(
            self.values, index=pd.Index(self.variants, name="variant"), columns=self.columns
        )

    def __repr__(self) -> str:
        header = ["variant", *self.columns]
        rows = [
            [str(v), *(_fmt(c, x) for c, x in zip(self.columns, row, strict=True))]
            for v, row in zip(self.variants, self.values, strict=True)
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(lines)


def _fmt(column: str, x: float) -> str:
    if column in ("users", "impressions", "clicks", "purchases", "sessions"):
        return f"{x:,.0f}"
    if column in ("ctr", "conversion", "coverage"):
        return f"{x:.4f}"
    return f"{x:.3f}"


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is installed in the test env
        raise ImportError("to_frame() needs pandas: pip install pandas") from exc
    return pd


def variant_summary(
    data: Any,
    *,
    n_items: int | None = None,
    session_gap: float = DEFAULT_SESSION_GAP,
    session_event: str = "click",
) -> VariantSummary:
    """Users, impressions, clicks, purchases, revenue, CTR, conversion, revenue per user,
    sessions, items per session and exposure coverage of every variant.

    CTR is NaN for a variant without impressions here (the summary describes, it does not
    test); the session columns are NaN without event times.
    """
    log = as_event_log(data)
    pu = per_user_metrics(log, session_gap=session_gap, session_event=session_event)
    return _summary_from(log, pu, n_items)


def _summary_from(log: EventLog, pu: UserMetrics, n_items: int | None) -> VariantSummary:
    """:func:`variant_summary` from already computed per-user metrics."""
    users = _variant_users(log)
    imp = _by_variant(log, pu.impressions)
    clk = _by_variant(log, pu.clicks)
    pur = _by_variant(log, pu.purchases)
    rev = _by_variant(log, pu.revenue)
    conv = _by_variant(log, pu.converted) / users
    with np.errstate(invalid="ignore", divide="ignore"):
        ctr = np.where(imp > 0, clk / np.maximum(imp, 1), np.nan)
    sessions = _by_variant(log, pu.sessions)
    ips = _by_variant(log, pu.items_per_session) / users
    coverage = np.array(list(exposure_coverage(log, n_items=n_items).values()))
    columns = [
        "users",
        "impressions",
        "clicks",
        "purchases",
        "revenue",
        "ctr",
        "conversion",
        "revenue_per_user",
        "sessions",
        "items_per_session",
        "coverage",
    ]
    values = np.column_stack(
        [users, imp, clk, pur, rev, ctr, conv, rev / users, sessions, ips, coverage]
    )
    if log.time is None:
        values[:, columns.index("sessions")] = np.nan
    return VariantSummary(log.variants.tolist(), columns, values)
