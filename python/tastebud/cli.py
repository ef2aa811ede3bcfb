"""Command line: ``tastebud demo | bench | evaluate | recommend``."""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["DEMO_MODELS", "main"]


def _popularity() -> Any:
    from tastebud.models import Popularity

    return Popularity()


def _item_knn() -> Any:
    from tastebud.models import ItemKNN

    return ItemKNN(neighbors=100)


def _ease() -> Any:
    from tastebud.models import EASE

    return EASE(regularization=100.0)


def _rp3beta() -> Any:
    from tastebud.models import RP3beta

    return RP3beta(neighbors=100, alpha=1.0, beta=0.3)


def _item2vec() -> Any:
    from tastebud.models import Item2Vec

    # scoring settings picked on synthetic(random_state=7) leave-last-out, not the demo's seed:
    # the synthetic users have stable tastes, so a longer, flatter history and a stronger
    # popularity blend suit them (MovieLens defaults: history=20, decay=0.5, weight=0.5)
    return Item2Vec(factors=64, epochs=10, history=50, recency_decay=0.9, popularity_weight=2.0)


def _als() -> Any:
    from tastebud.models import ALS

    return ALS(factors=32, regularization=0.05, alpha=1.0, iterations=15, random_state=42)


def _bpr() -> Any:
    from tastebud.models import BPR

    return BPR(factors=32, learning_rate=0.05, regularization=0.01, iterations=60, random_state=42)


def _svd() -> Any:
    from tastebud.models import SVD

    return SVD(factors=32, epochs=20, random_state=42)


def _hybrid() -> Any:
    from tastebud.models import Hybrid

    return Hybrid(factors=32, epochs=20, random_state=42)


#: (name, factory) of every model the demo fits; each family adds its own line.
def _content_based(item_features: Any) -> Any:
    from tastebud.models import ContentBased

    # Synthetic items have genres + tags; the prior lets popularity break content ties.
    return ContentBased(popularity_weight=1.0, item_features=item_features)


#: (name, factory) of every model the demo fits; each family adds its own line. A factory
#: takes no argument, or a keyword ``item_features`` (the data set's item ``Features``, data
#: rather than a hyperparameter) when the model needs side information.
DEMO_MODELS: list[tuple[str, Callable[..., Any]]] = [
    ("Popularity", _popularity),
    ("ALS", _als),
    ("BPR", _bpr),
    ("ItemKNN", _item_knn),
    ("EASE", _ease),
    ("RP3beta", _rp3beta),
    ("ContentBased", _content_based),
    ("Item2Vec", _item2vec),
    ("Hybrid", _hybrid),
]

#: (name, factory) of the rating models whose RMSE/MAE the demo reports on the ratings.
RATING_MODELS: list[tuple[str, Callable[[], Any]]] = [
    ("Baseline", lambda: _rating_model("Baseline")),
    ("SVD", _svd),
    ("SVDpp", lambda: _rating_model("SVDpp", factors=20, random_state=42)),
]


def _rating_model(name: str, **params: Any) -> Any:
    import tastebud.models

    return getattr(tastebud.models, name)(**params)


def _rating_section(ratings: Any, seed: int, wanted: set[str] | None) -> None:
    """RMSE/MAE of the rating models on a per-user 20% holdout of the ratings."""
    from tastebud.data import split
    from tastebud.metrics import mae, rmse

    chosen = [(n, f) for n, f in RATING_MODELS if wanted is None or n.lower() in wanted]
    if not chosen:
        return
    train, test = split.random_holdout(ratings, test_fraction=0.2, random_state=seed)
    arrays = test.to_arrays()
    print(f"\nrating prediction: per-user 20% holdout of {ratings.nnz} ratings, seed {seed}")
    print(f"{'model':<10} {'RMSE':>7} {'MAE':>7} {'fit s':>7}")
    for name, factory in chosen:
        t0 = time.perf_counter()
        model = factory().fit(train)
        fit_s = time.perf_counter() - t0
        pred = model.predict(arrays["user"], arrays["item"])
        err_r = rmse(arrays["weight"], pred)
        err_m = mae(arrays["weight"], pred)
        print(f"{name:<10} {err_r:>7.4f} {err_m:>7.4f} {fit_s:>7.2f}")


def _next_item_report(interactions: Any, factories: dict[str, Callable[[], Any]]) -> None:
    """Next-item hit@10 (leave-last-out: each user's latest item, seen items excluded) of the
    sequence models in the demo, next to Popularity."""
    from tastebud.data import split

    if interactions.timestamps is None:
        return
    train, test = split.leave_last_out(interactions, min_interactions=3)
    users = np.flatnonzero(test.user_counts() > 0)
    truth = np.asarray(test.matrix.indices)[np.asarray(test.matrix.indptr)[users]]
    parts = []
    for name in ("Item2Vec", "Popularity"):
        if name in factories:
            idx, _ = factories[name]().fit(train).recommend_indices(users, 10)
            parts.append(f"{name} {float((idx == truth[:, None]).any(axis=1).mean()):.4f}")
    print(f"next-item hit@10 (leave-last-out, {users.size} users): " + ", ".join(parts))


def _cold_start_line(args: argparse.Namespace) -> str:
    """Hybrid on synthetic data with 10% of the items unseen in training: NDCG@k of ranking
    those items from their genres/tags (``score_items``) vs random."""
    from tastebud import metrics as M
    from tastebud.data import Interactions, datasets
    from tastebud.search import topk

    data = datasets.synthetic(
        n_users=args.users, n_items=args.items, n_interactions=args.interactions,
        random_state=args.seed,
    )  # fmt: skip
    inter = data.interactions
    rng = np.random.default_rng(args.seed)
    held = np.sort(rng.choice(inter.n_items, max(1, inter.n_items // 10), replace=False))
    arr = inter.to_arrays()
    held_ids = inter.items.ids(held)
    keep = ~np.isin(arr["item"], held_ids)
    train = Interactions.from_arrays(
        arr["user"][keep], arr["item"][keep], user_ids=inter.users,
        item_ids=np.setdiff1d(inter.items.ids_array, held_ids),
    )  # fmt: skip
    model = _hybrid().fit(train, item_features=data.item_features, show_progress=False)
    relevant = inter.matrix[:, held]
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    k = min(args.k, held.size)
    scores = model.score_items(data.item_features.align(held_ids), inter.users.ids(users))
    got = M.ndcg_at_k(topk(scores, k=k)[0], relevant[users], k)
    rnd = rng.random(scores.shape).astype(np.float32)
    base = M.ndcg_at_k(topk(rnd, k=k)[0], relevant[users], k)
    return (
        f"cold start (Hybrid, {held.size} items unseen in training, ranked from their "
        f"features for {users.size} users): NDCG@{k} {got:.4f} vs random {base:.4f}"
    )


def _build(factory: Callable[..., Any], item_features: Any) -> Any:
    """Call a DEMO_MODELS factory, passing the item features if it asks for them."""
    if "item_features" in inspect.signature(factory).parameters:
        if item_features is None:
            raise SystemExit("this model needs item features, which this data set lacks.")
        return factory(item_features=item_features)
    return factory()


def _load_data(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(implicit interactions, ratings or None, item Features or None) for the data set."""
    from tastebud.data import Features, datasets

    if args.data == "synthetic":
        data = datasets.synthetic(
            n_users=args.users,
            n_items=args.items,
            n_interactions=args.interactions,
            random_state=args.seed,
        )
        return data.interactions, data.ratings, data.item_features
    if not args.path:
        raise SystemExit(f"--data {args.data} needs --path DIR (the unpacked MovieLens folder).")
    ml = datasets.load_movielens(args.path, variant=args.data)
    features = ml.item_features
    if ml.item_tags is not None:
        features = Features.concat([features, ml.item_tags])
    return ml.ratings.binarize(), ml.ratings, features


def cmd_demo(args: argparse.Namespace) -> int:
    from tastebud.data import split
    from tastebud.evaluation import compare

    t0 = time.perf_counter()
    interactions, ratings, item_features = _load_data(args)
    print(f"data: {args.data} {interactions} (loaded in {time.perf_counter() - t0:.2f}s)")
    train, test = split.random_holdout(interactions, test_fraction=0.2, random_state=args.seed)
    print(f"split: per-user 20% holdout, seed {args.seed}: train {train.nnz}, test {test.nnz}")
    wanted = {m.lower() for m in args.models} if args.models else None
    models = {
        name: _build(factory, item_features)
        for name, factory in DEMO_MODELS
        if wanted is None or name.lower() in wanted
    }
    if not models:
        raise SystemExit(f"no model matches {args.models}; known: {[n for n, _ in DEMO_MODELS]}")
    result = compare(
        models,
        train,
        test,
        k=args.k,
        metrics=("precision", "recall", "ndcg", "map", "coverage"),
        verbose=not args.quiet,
    )
    print()
    print(result)
    if any(name == "Item2Vec" for name in models):
        _next_item_report(interactions, dict(DEMO_MODELS))
    if args.data == "synthetic" and "Hybrid" in models:
        print(_cold_start_line(args))
    if ratings is not None:
        _rating_section(ratings, args.seed, wanted)
    if args.data == "synthetic":
        from tastebud.abtest import demo_ab_section
        from tastebud.data import datasets

        planted = datasets.synthetic(  # same arguments: the same data, now with its factors
            n_users=args.users,
            n_items=args.items,
            n_interactions=args.interactions,
            random_state=args.seed,
        )
        demo_ab_section(
            models,
            result,
            train,
            planted.user_factors,
            planted.item_factors,
            k=args.k,
            random_state=args.seed,
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tastebud.search import topk

    rng = np.random.default_rng(0)
    q = rng.standard_normal((args.users, 64), dtype=np.float32)
    it = rng.standard_normal((args.items, 64), dtype=np.float32)
    topk(q[:100], it, 10)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        topk(q, it, 10, num_threads=args.threads)
        times.append(time.perf_counter() - t0)
    t = float(np.median(times))
    print(
        f"top-10 of {args.users} queries x {args.items} items x 64: {t:.3f} s "
        f"({args.users / t:,.0f} queries/s, {2 * args.users * args.items * 64 / t / 1e9:.0f} "
        f"GFLOP/s). Peer comparisons: python benchmarks/compare_peers.py"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tastebud.data import split
    from tastebud.evaluation import evaluate

    if args.k < 1:
        raise SystemExit(f"--k must be >= 1; got {args.k}.")
    interactions, _, item_features = _load_data(args)
    train, test = split.random_holdout(interactions, random_state=args.seed)
    factories = {name.lower(): factory for name, factory in DEMO_MODELS}
    if args.model.lower() not in factories:
        raise SystemExit(f"unknown model {args.model!r}; known: {[n for n, _ in DEMO_MODELS]}")
    print(
        evaluate(
            _build(factories[args.model.lower()], item_features),
            train,
            test,
            args.k,
            verbose=not args.quiet,
        )
    )
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from tastebud.models import load

    model = load(args.model_file)
    users: list[Any] = list(args.users)
    if model.users_.kind == "int":
        bad = [u for u in users if not u.lstrip("-").isdigit()]
        if bad:
            raise SystemExit(f"this model's user ids are integers; got {bad[:5]}.")
        users = [int(u) for u in users]
    try:
        recs = model.recommend(users, k=args.k)
    except KeyError as exc:  # unknown user ids: one line, not a traceback
        raise SystemExit(str(exc.args[0]) if exc.args else str(exc)) from None
    except ValueError as exc:  # e.g. k outside [1, catalogue]
        raise SystemExit(str(exc)) from None
    print(recs.to_frame().to_string(index=False))
    return 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", default="synthetic", choices=["synthetic", "ml-100k", "ml-1m", "ml-latest-small"]
    )
    p.add_argument("--path", help="folder of the unpacked MovieLens data set")
    p.add_argument("--users", type=int, default=2000, help="synthetic: number of users")
    p.add_argument("--items", type=int, default=1000, help="synthetic: number of items")
    p.add_argument("--interactions", type=int, default=100_000, help="synthetic: interactions")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tastebud", description="tastebud recommenders")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="fit every model on a data set and compare them")
    _add_data_args(p)
    p.add_argument("--models", nargs="*", help="only these models (by name)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("bench", help="quick top-k kernel throughput on this machine")
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("evaluate", help="evaluate one model on a data set")
    _add_data_args(p)
    p.add_argument("--model", default="Popularity")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("recommend", help="recommend from a saved model")
    p.add_argument("model_file")
    p.add_argument("users", nargs="+")
    p.add_argument("--k", type=int, default=10)
    p.set_defaults(func=cmd_recommend)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
