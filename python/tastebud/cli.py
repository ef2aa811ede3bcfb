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


def _content_based(item_features: Any) -> Any:
    from tastebud.models import ContentBased

    # Synthetic items have genres + tags; the prior lets popularity break content ties.
    return ContentBased(popularity_weight=1.0, item_features=item_features)


#: (name, factory) of every model the demo fits; each family adds its own line. A factory
#: takes no argument, or a keyword ``item_features`` (the data set's item ``Features``, data
#: rather than a hyperparameter) when the model needs side information.
DEMO_MODELS: list[tuple[str, Callable[..., Any]]] = [
    ("Popularity", _popularity),
    ("ContentBased", _content_based),
]


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
    interactions, _, item_features = _load_data(args)
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

    interactions, _, item_features = _load_data(args)
    train, test = split.random_holdout(interactions, random_state=args.seed)
    factories = dict(DEMO_MODELS)
    if args.model not in factories:
        raise SystemExit(f"unknown model {args.model!r}; known: {sorted(factories)}")
    print(
        evaluate(
            _build(factories[args.model], item_features),
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
        users = [int(u) for u in users]
    print(model.recommend(users, k=args.k).to_frame().to_string(index=False))
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
