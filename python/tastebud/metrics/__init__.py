"""Evaluation metrics over arrays: ranking, rating, beyond-accuracy, confusion.

Inputs are arrays, not Python lists: ``recommended`` is an ``(n_users, k)``
integer array of item indices (``-1`` = empty slot), ``relevant`` a scipy.sparse
``(n_users, n_items)`` matrix (values = gains). Per-user functions take
``reduce="mean" | "none"``. The hot paths are Numba kernels in
:mod:`tastebud.kernels.metrics`, compiled lazily on first use.
"""

from tastebud.metrics.beyond import (
    catalog_coverage,
    gini,
    intra_list_diversity,
    novelty,
    personalization,
    popularity_share,
    serendipity,
)
from tastebud.metrics.business import (
    EVENT_TYPES,
    EventLog,
    UserMetrics,
    VariantSummary,
    as_event_log,
    click_through_rate,
    conversion_rate,
    exposure_coverage,
    items_per_session,
    per_user_metrics,
    revenue_per_user,
    sessionize,
    variant_summary,
)
from tastebud.metrics.confusion import ConfusionAtK, confusion_at_k
from tastebud.metrics.ranking import (
    RANKING_METRICS,
    auc,
    f1_at_k,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from tastebud.metrics.rating import mae, mse, rmse

__all__ = [
    "EVENT_TYPES",
    "RANKING_METRICS",
    "ConfusionAtK",
    "EventLog",
    "UserMetrics",
    "VariantSummary",
    "as_event_log",
    "auc",
    "catalog_coverage",
    "click_through_rate",
    "confusion_at_k",
    "conversion_rate",
    "exposure_coverage",
    "f1_at_k",
    "gini",
    "hit_rate_at_k",
    "intra_list_diversity",
    "items_per_session",
    "mae",
    "map_at_k",
    "mrr_at_k",
    "mse",
    "ndcg_at_k",
    "novelty",
    "per_user_metrics",
    "personalization",
    "popularity_share",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "revenue_per_user",
    "rmse",
    "serendipity",
    "sessionize",
    "variant_summary",
]
