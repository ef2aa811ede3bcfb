"""Data sets: a synthetic generator with planted structure, and MovieLens readers.

MovieLens is licensed by GroupLens for research use and may not be redistributed, so
tastebud ships no copy: :func:`download_movielens` fetches the official zip into a local
cache and :func:`load_movielens` reads an extracted folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .._errors import DataWarning
from ._features import Features
from ._interactions import Interactions
from ._validation import check_int, describe

__all__ = [
    "MovieLens",
    "SyntheticData",
    "download_movielens",
    "load_movielens",
    "synthetic",
]


# ============================================================================ synthetic
@dataclass(frozen=True)
class SyntheticData:
    """Output of :func:`synthetic`.

    Attributes
    ----------
    interactions : Interactions
        Implicit events (weight 1.0) with int64 timestamps.
    ratings : Interactions
        The same (user, item) pairs rated 1..5 (float32 weights), same vocabularies.
    item_features : Features
        Genres (multi-label, ``"genre=g<k>"``) and tags (counts, ``"tag=t<k>"``), aligned to
        ``interactions.items``.
    user_features : Features
        Categorical ``age=<band>`` and ``country=<code>``, aligned to ``interactions.users``.
    user_factors, item_factors : ndarray
        The planted latent factors (float64), row ``i`` for index ``i``.
    item_genres : ndarray
        Primary genre index of each item.
    """

    interactions: Interactions
    ratings: Interactions
    item_features: Features
    user_features: Features
    user_factors: np.ndarray = field(repr=False)
    item_factors: np.ndarray = field(repr=False)
    item_genres: np.ndarray = field(repr=False)


def _user_counts(
    rng: np.random.Generator, n_users: int, n_items: int, total: int, minimum: int
) -> np.ndarray:
    """Heavy-tailed (lognormal) counts per user summing exactly to ``total``, each in
    [minimum, n_items]. Vectorized water-filling; a handful of passes at most."""
    counts = np.full(n_users, minimum, dtype=np.int64)
    remaining = total - counts.sum()
    weight = rng.lognormal(0.0, 1.0, n_users)
    while remaining > 0:
        room = n_items - counts
        w = np.where(room > 0, weight, 0.0)
        share = np.floor(remaining * w / w.sum()).astype(np.int64)
        add = np.minimum(share, room)
        if add.sum() == 0:  # leftovers smaller than one per user: give to the heaviest
            top = np.argsort(-w, kind="stable")[:remaining]
            add = np.zeros_like(counts)
            add[top] = 1
            add = np.minimum(add, room)
        counts += add
        remaining -= int(add.sum())
    return counts


def synthetic(
    n_users: int = 2000,
    n_items: int = 1000,
    n_interactions: int = 100_000,
    *,
    n_factors: int = 8,
    n_genres: int = 12,
    n_tags: int = 40,
    popularity_exponent: float = 1.0,
    noise: float = 1.0,
    drift: float = 1.0,
    random_state: int = 42,
) -> SyntheticData:
    """Generate interactions with planted latent structure, popularity and time drift.

    The model: items belong to genres (a genre is a centroid in factor space, an item its
    centroid plus noise) and have a power-law popularity; users have latent factors. Each
    user draws ``n_u`` distinct items (lognormal counts, at least 5) by Gumbel-top-k, i.e.
    without replacement with probability proportional to
    ``exp((2 user·item + log popularity) / noise)``. A user's events get increasing
    timestamps, ordered so that later events lean towards a per-user drift direction. A
    rating is ``3 + 1.2 * z(user·item) + N(0, 0.5 noise)`` rounded and clipped to 1..5.
    Personalised models therefore beat popularity, content models can use the genres and
    tags (both derived from item factors), and temporal models can use the drift.

    Parameters
    ----------
    n_users, n_items : int
        Sizes (every user and item id ``0..n-1`` is in the vocabularies, even without events).
    n_interactions : int
        Exact number of events; between ``5 * n_users`` and ``n_users * n_items``.
    n_factors, n_genres, n_tags : int
        Latent dimension, number of genres and of tags.
    popularity_exponent : float
        Zipf exponent of item popularity (0 = uniform).
    noise : float
        Temperature of the choice model and scale of rating noise; larger = weaker signal.
    drift : float
        Strength of the within-user time drift (0 = time order is random).
    random_state : int
        Seed; equal seeds give identical data.

    Returns
    -------
    SyntheticData

    Examples
    --------
    >>> data = synthetic(200, 100, 5000, random_state=0)
    >>> data.interactions.nnz
    5000
    """
    n_users = check_int(n_users, "n_users", 1)
    n_items = check_int(n_items, "n_items", 5)
    n_factors = check_int(n_factors, "n_factors", 1)
    n_genres = check_int(n_genres, "n_genres", 1)
    n_tags = check_int(n_tags, "n_tags", 1)
    n_interactions = check_int(n_interactions, "n_interactions", 1)
    min_count = 5
    if not min_count * n_users <= n_interactions <= n_users * n_items:
        raise ValueError(
            f"n_interactions must be in [5 * n_users, n_users * n_items] = "
            f"[{min_count * n_users}, {n_users * n_items}]; got {n_interactions}."
        )
    for name, value in (
        ("noise", noise),
        ("popularity_exponent", popularity_exponent),
        ("drift", drift),
    ):
        if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {describe(value)}.")
    if noise == 0:
        raise ValueError("noise must be > 0; got 0.")
    rng = np.random.default_rng(random_state)
    f = n_factors
    centroids = rng.normal(0.0, 1.0, (n_genres, f))
    genre = rng.integers(0, n_genres, n_items)
    item_factors = (centroids[genre] + rng.normal(0.0, 0.6, (n_items, f))) / np.sqrt(f)
    pop_rank = rng.permutation(n_items)
    log_pop = -popularity_exponent * np.log1p(pop_rank)

    # Users: factors, heavy-tailed activity.
    user_factors = rng.normal(0.0, 1.0, (n_users, f))
    counts = _user_counts(rng, n_users, n_items, n_interactions, min_count)

    # Gumbel-top-k sampling, in chunks of users to bound memory (chunk x n_items floats).
    # Items come out in decreasing perturbed utility; the drift key then orders them in time.
    drift_dir = rng.normal(0.0, 1.0, (n_users, f))
    rows_out = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    cols_out = np.empty(n_interactions, dtype=np.int64)
    time_key = np.empty(n_interactions, dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    chunk = max(1, min(n_users, 4_000_000 // n_items))
    for start in range(0, n_users, chunk):  # loop over user chunks, not interactions
        stop = min(start + chunk, n_users)
        util = (2.0 * (user_factors[start:stop] @ item_factors.T) + log_pop) / noise
        util += rng.gumbel(size=util.shape)
        k_max = int(counts[start:stop].max())
        top = (
            np.argpartition(-util, k_max - 1, axis=1)[:, :k_max]
            if k_max < n_items
            else np.broadcast_to(np.arange(n_items), util.shape).copy()
        )
        top_util = np.take_along_axis(util, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_util, axis=1, kind="stable"), axis=1)
        keep = np.arange(k_max) < counts[start:stop, None]
        sel = top[keep]
        cols_out[offsets[start] : offsets[stop]] = sel
        d = np.einsum(
            "ij,ij->i",
            drift_dir[np.repeat(np.arange(start, stop), counts[start:stop])],
            item_factors[sel],
        )
        time_key[offsets[start] : offsets[stop]] = drift * d + rng.normal(0.0, 1.0, sel.size)

    # Timestamps: per user a start in 2020-2022, then exponential gaps (about a day).
    order = np.lexsort((time_key, rows_out))
    cols_out = cols_out[order]
    start_time = 1_577_836_800 + rng.integers(0, 2 * 365 * 86_400, n_users)
    gaps = rng.exponential(86_400.0, n_interactions).astype(np.int64) + 1
    user_first = offsets[:-1]
    csum = np.cumsum(gaps)
    base = np.repeat(csum[user_first] - gaps[user_first], counts)
    timestamps = np.repeat(start_time, counts) + (csum - base)

    # Ratings from the affinity, standardised, plus noise.
    affinity = np.einsum("ij,ij->i", user_factors[rows_out], item_factors[cols_out])
    z = (affinity - affinity.mean()) / (affinity.std() or 1.0)
    ratings = np.clip(np.rint(3.0 + 1.2 * z + rng.normal(0.0, 0.5 * noise, z.size)), 1, 5)

    user_ids = np.arange(n_users, dtype=np.int64)
    item_ids = np.arange(n_items, dtype=np.int64)
    inter = Interactions.from_arrays(
        rows_out,
        cols_out,
        None,
        timestamps,
        duplicates="error",
        user_ids=user_ids,
        item_ids=item_ids,
    )
    rated = Interactions.from_arrays(
        rows_out,
        cols_out,
        ratings,
        timestamps,
        duplicates="error",
        user_ids=inter.users,
        item_ids=inter.items,
    )

    # Item side information: primary genre (+ a second, nearest by centroid, for ~30%),
    # and tags drawn from a softmax over tag directions (counts 1..4).
    second = (
        np.argmax(item_factors @ centroids.T - 1e9 * np.eye(n_genres)[genre], axis=1)
        if n_genres > 1
        else genre
    )
    has_second = rng.random(n_items) < 0.3
    g_rows = np.concatenate([np.arange(n_items), np.flatnonzero(has_second)])
    g_cols = np.concatenate([genre, second[has_second]])
    genre_names = np.array([f"genre=g{k}" for k in range(n_genres)])
    genres = Features._from_coo(inter.items, g_rows, g_cols, np.ones(g_rows.size), genre_names)
    genres = genres._binary()
    tag_dirs = rng.normal(0.0, 1.0, (n_tags, f))
    n_item_tags = min(3, n_tags)
    tag_util = item_factors @ tag_dirs.T * np.sqrt(f) + rng.gumbel(size=(n_items, n_tags))
    tag_top = np.argpartition(-tag_util, n_item_tags - 1, axis=1)[:, :n_item_tags]
    t_rows = np.repeat(np.arange(n_items), n_item_tags)
    t_vals = 1 + rng.poisson(1.0, t_rows.size).clip(0, 3)
    tag_names = np.array([f"tag=t{k}" for k in range(n_tags)])
    tags = Features._from_coo(
        inter.items, t_rows, tag_top.ravel(), t_vals.astype(np.float64), tag_names
    )
    item_features = Features.concat([genres, tags])

    # User side information: age band follows the first factor, country is random.
    bands = np.array(["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"])
    q = np.argsort(np.argsort(user_factors[:, 0] + rng.normal(0, 0.5, n_users)))
    age = bands[(q * len(bands)) // n_users]
    countries = np.array(["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA"])
    country = countries[
        rng.choice(len(countries), n_users, p=np.array([8, 4, 3, 3, 3, 2, 2, 1]) / 26)
    ]
    user_features = Features.from_categorical(inter.users, {"age": age, "country": country})

    return SyntheticData(
        interactions=inter,
        ratings=rated,
        item_features=item_features,
        user_features=user_features,
        user_factors=user_factors,
        item_factors=item_factors,
        item_genres=genre,
    )


# ============================================================================ MovieLens
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


@dataclass(frozen=True)
class MovieLens:
    """A MovieLens data set read by :func:`load_movielens`.

    Attributes
    ----------
    variant : str
        ``"ml-100k"``, ``"ml-1m"`` or ``"ml-latest-small"`` (any ``ratings.csv`` release).
    ratings : Interactions
        Weight = rating (0.5..5), int64 Unix-second timestamps. Ids are the MovieLens
        integer user and movie ids; the item vocabulary holds the rated movies.
    item_features : Features
        Genres (multi-label, ``"genre=<name>"``), aligned to ``ratings.items``.
    item_titles : dict
        Movie id -> title, for every movie in the movies file.
    item_tags : Features or None
        Tag counts (``"tag=<tag>"``, lower-cased) aligned to ``ratings.items`` when the
        release has ``tags.csv``.
    user_features : Features or None
        Gender, age and occupation (categorical) when the release has user data
        (ml-100k ``u.user``, ml-1m ``users.dat``).
    """

    variant: str
    ratings: Interactions
    item_features: Features
    item_titles: dict[Any, str]
    item_tags: Features | None = None
    user_features: Features | None = None


def _detect_variant(folder: Path) -> str:
    if (folder / "u.data").is_file():
        return "ml-100k"
    if (folder / "ratings.dat").is_file():
        return "ml-1m"
    if (folder / "ratings.csv").is_file():
        return "ml-latest-small"
    raise FileNotFoundError(
        f"{str(folder)!r} holds no MovieLens ratings file (u.data, ratings.dat or ratings.csv)."
    )


def _read_table(path: Path, sep: str, encoding: str = "latin-1") -> list[list[str]]:
    """Read a small delimited text file (movies, users: thousands of lines) into fields."""
    text = path.read_text(encoding=encoding)
    return [line.split(sep) for line in text.splitlines() if line.strip()]


def _load_numeric(path: Path, sep: str, skip_header: bool) -> np.ndarray:
    """Read a numeric ratings file into a float64 array (n, 4) with numpy's C parser."""
    raw = path.read_bytes()
    if sep != "\t":
        raw = raw.replace(sep.encode(), b"\t")
    try:
        table = np.loadtxt(
            io.BytesIO(raw),
            delimiter="\t",
            dtype=np.float64,
            skiprows=1 if skip_header else 0,
            ndmin=2,
            usecols=(0, 1, 2, 3),
        )
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} is not a MovieLens ratings file: {exc}") from None
    if table.shape[0] == 0:
        raise ValueError(f"{str(path)!r} holds no ratings.")
    return table


def _ratings_from_table(table: np.ndarray) -> Interactions:
    return Interactions.from_arrays(
        table[:, 0].astype(np.int64),
        table[:, 1].astype(np.int64),
        table[:, 2],
        table[:, 3].astype(np.int64),
        duplicates="last",
    )


def _genre_features(ids: list[int], genres: list[list[str]], items: Any) -> Features:
    feats = Features.from_multilabel(np.asarray(ids, dtype=np.int64), genres, prefix="genre=")
    return feats.align(items)


def load_movielens(path: str | os.PathLike[str], variant: str | None = None) -> MovieLens:
    """Read an extracted MovieLens folder.

    Parameters
    ----------
    path : str or path-like
        Folder with the release's files (as extracted from the official zip).
    variant : {"ml-100k", "ml-1m", "ml-latest-small", "ml-latest", "ml-20m", "ml-25m",
               "ml-32m", "ml-10m"}, optional
        File layout; detected from the files present when None. ``ratings.dat`` releases
        (ml-1m, ml-10m) share one reader, as do the ``ratings.csv`` ones.

    Returns
    -------
    MovieLens

    Raises
    ------
    FileNotFoundError
        The folder or a required file is missing.
    ValueError
        Unknown variant or malformed file.

    Examples
    --------
    >>> ml = load_movielens("data/ml-100k")  # doctest: +SKIP
    >>> ml.ratings.shape
    (943, 1682)
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"path must be a MovieLens folder; {str(folder)!r} is not one.")
    detected = _detect_variant(folder)
    if variant is None:
        variant = detected
    layouts = {
        "ml-100k": "ml-100k",
        "ml-1m": "ml-1m",
        "ml-10m": "ml-1m",
        "ml-latest-small": "ml-latest-small",
        "ml-latest": "ml-latest-small",
        "ml-20m": "ml-latest-small",
        "ml-25m": "ml-latest-small",
        "ml-32m": "ml-latest-small",
    }
    if variant not in layouts:
        raise ValueError(f"variant must be one of {sorted(layouts)} or None; got {variant!r}.")
    layout = layouts[variant]
    if layout != detected:
        raise ValueError(
            f"variant={variant!r} does not match the files in {str(folder)!r} "
            f"(they look like {detected!r})."
        )
    if layout == "ml-100k":
        return _load_100k(folder, variant)
    if layout == "ml-1m":
        return _load_1m(folder, variant)
    return _load_latest(folder, variant)


def _load_100k(folder: Path, variant: str) -> MovieLens:
    ratings = _ratings_from_table(_load_numeric(folder / "u.data", "\t", False))
    genre_names = list(ML100K_GENRES)
    if (folder / "u.genre").is_file():
        rows = _read_table(folder / "u.genre", "|")
        genre_names = [r[0] for r in sorted(rows, key=lambda r: int(r[1]))]
    ids, titles, genres = [], {}, []
    if (folder / "u.item").is_file():
        for row in _read_table(folder / "u.item", "|"):
            flags = row[5 : 5 + len(genre_names)]
            if len(flags) != len(genre_names):
                raise ValueError(
                    f"u.item line for movie {row[0]!r} has {len(row)} fields; "
                    f"expected {5 + len(genre_names)}."
                )
            mid = int(row[0])
            ids.append(mid)
            titles[mid] = row[1]
            genres.append(
                [g for g, flag in zip(genre_names, flags, strict=True) if flag.strip() == "1"]
            )
    user_features = None
    if (folder / "u.user").is_file():
        rows = _read_table(folder / "u.user", "|")
        user_features = _user_features(
            [int(r[0]) for r in rows],
            [r[2] for r in rows],
            [int(r[1]) for r in rows],
            [r[3] for r in rows],
            ratings,
        )
    return MovieLens(
        variant, ratings, _genre_features(ids, genres, ratings.items), titles, None, user_features
    )


def _age_band(age: int) -> str:
    for upper, label in (
        (18, "<18"),
        (25, "18-24"),
        (35, "25-34"),
        (45, "35-44"),
        (50, "45-49"),
        (56, "50-55"),
    ):
        if age < upper:
            return label
    return "56+"


def _user_features(
    ids: list[int],
    gender: list[str],
    age: list[int],
    occupation: list[str],
    ratings: Interactions,
) -> Features:
    feats = Features.from_categorical(
        np.asarray(ids, dtype=np.int64),
        {"gender": gender, "age": [_age_band(a) for a in age], "occupation": occupation},
    )
    return feats.align(ratings.users)


def _load_1m(folder: Path, variant: str) -> MovieLens:
    ratings = _ratings_from_table(_load_numeric(folder / "ratings.dat", "::", False))
    ids, titles, genres = [], {}, []
    if (folder / "movies.dat").is_file():
        for row in _read_table(folder / "movies.dat", "::"):
            mid = int(row[0])
            ids.append(mid)
            titles[mid] = "::".join(row[1:-1])
            genres.append(_split_genres(row[-1]))
    user_features = None
    if (folder / "users.dat").is_file():
        rows = _read_table(folder / "users.dat", "::")
        # ml-1m codes age as the band's lower bound (1, 18, 25, ...) and occupation as 0..20.
        user_features = _user_features(
            [int(r[0]) for r in rows],
            [r[1] for r in rows],
            [int(r[2]) for r in rows],
            [r[3] for r in rows],
            ratings,
        )
    return MovieLens(
        variant, ratings, _genre_features(ids, genres, ratings.items), titles, None, user_features
    )


def _split_genres(text: str) -> list[str]:
    text = text.strip()
    if not text or text == "(no genres listed)":
        return []
    return text.split("|")


def _load_latest(folder: Path, variant: str) -> MovieLens:
    ratings = _ratings_from_table(_load_numeric(folder / "ratings.csv", ",", True))
    ids, titles, genres = [], {}, []
    if (folder / "movies.csv").is_file():
        with open(folder / "movies.csv", newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:  # one line per movie (not per interaction)
                if not row:
                    continue
                mid = int(row[0])
                ids.append(mid)
                titles[mid] = row[1]
                genres.append(_split_genres(row[2]))
    tags = None
    if (folder / "tags.csv").is_file():
        with open(folder / "tags.csv", newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            pairs = [(int(r[1]), r[2].strip().lower()) for r in reader if len(r) >= 3]
        if pairs:
            movie = np.array([p[0] for p in pairs], dtype=np.int64)
            tag = np.array([p[1] for p in pairs], dtype=str)
            known = ratings.items.index(movie, missing="negative") >= 0
            tags = Features.from_tags(ratings.items, (movie[known], tag[known]), prefix="tag=")
    return MovieLens(
        variant, ratings, _genre_features(ids, genres, ratings.items), titles, tags, None
    )


# ============================================================================ download
MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/{variant}.zip"

#: sha256 of the official zips, checked when downloading. Empty by design: tastebud does not
#: ship digests it has not verified itself. Pass ``sha256=`` to pin one (GroupLens publishes
#: ``<variant>.zip.md5`` next to each zip); unpinned downloads warn with the digest they got.
KNOWN_SHA256: dict[str, str] = {}


def _default_cache() -> Path:
    env = os.environ.get("TASTEBUD_DATA")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "tastebud"


def _safe_extract(archive: zipfile.ZipFile, dest: Path) -> None:
    """Extract every member under ``dest``; reject absolute paths, ``..``, and symlinks."""
    root = dest.resolve()
    for info in archive.infolist():
        name = info.filename
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
            raise ValueError(f"refusing to extract unsafe zip member {name!r} (path traversal).")
        mode = (info.external_attr >> 16) & 0o170000
        if mode == 0o120000:
            raise ValueError(f"refusing to extract symlink zip member {name!r}.")
        target = (root / pure).resolve()
        if target != root and root not in target.parents:
            raise ValueError(f"refusing to extract unsafe zip member {name!r} (path traversal).")
    archive.extractall(root)


def download_movielens(
    variant: str = "ml-100k",
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
) -> Path:
    """Download and extract a MovieLens release, once, into a cache folder.

    Parameters
    ----------
    variant : str
        Release name as on grouplens.org, e.g. ``"ml-100k"``, ``"ml-1m"``,
        ``"ml-latest-small"``, ``"ml-25m"``.
    cache_dir : str or path-like, optional
        Where to keep it; default ``$TASTEBUD_DATA`` or ``~/.cache/tastebud``.
    url : str, optional
        Override the source (any URL urllib opens, including ``file://``).
    sha256 : str, optional
        Expected hex digest of the zip; default the entry of :data:`KNOWN_SHA256`. Without
        one the download is not verified and a :class:`~tastebud.DataWarning` reports the
        digest, so it can be pinned.

    Returns
    -------
    pathlib.Path
        The extracted folder (``<cache_dir>/<variant>``), ready for :func:`load_movielens`.

    Raises
    ------
    ValueError
        Digest mismatch (the file is discarded) or an unsafe zip member.
    """
    if (
        not isinstance(variant, str)
        or not variant
        or "/" in variant
        or "\\" in variant
        or variant.startswith(".")
    ):
        raise ValueError(f"variant must be a release name such as 'ml-100k'; got {variant!r}.")
    cache = Path(cache_dir) if cache_dir is not None else _default_cache()
    target = cache / variant
    marker = target / ".tastebud-complete"
    if marker.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    source = url or MOVIELENS_URL.format(variant=variant)
    expected = sha256 or KNOWN_SHA256.get(variant)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        zpath = Path(tmp) / f"{variant}.zip"
        digest = hashlib.sha256()
        with urllib.request.urlopen(source) as resp, open(zpath, "wb") as out:
            while block := resp.read(1 << 20):
                digest.update(block)
                out.write(block)
        got = digest.hexdigest()
        if expected is None:
            warnings.warn(
                f"downloaded {source} without a known sha256 to verify it; its sha256 is "
                f"{got} (pass sha256=... to pin it).",
                DataWarning,
                stacklevel=2,
            )
        elif got.lower() != expected.lower():
            raise ValueError(
                f"sha256 mismatch for {source}: expected {expected}, got {got}; the file was "
                "discarded."
            )
        extract = Path(tmp) / "extract"
        extract.mkdir()
        try:
            with zipfile.ZipFile(zpath) as archive:
                _safe_extract(archive, extract)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{source} is not a zip file: {exc}") from None
        # Official zips hold one folder named after the variant; accept a flat zip too.
        entries = [p for p in extract.iterdir() if not p.name.startswith("__MACOSX")]
        inner = entries[0] if len(entries) == 1 and entries[0].is_dir() else extract
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(inner), str(target))
        marker.write_text(got + "\n", encoding="utf-8")
    return target
