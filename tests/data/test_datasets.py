"""Tests of ``datasets``: the synthetic generator, MovieLens readers and the downloader.

MovieLens fixtures are tiny hand-written files in the official formats (the real data may
not be redistributed, so no test reads it).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tastebud import _errors
from tastebud.data import Interactions, datasets, split


# ------------------------------------------------------------------ synthetic
@pytest.fixture(scope="module")
def synth() -> datasets.SyntheticData:
    return datasets.synthetic(300, 200, 12_000, random_state=7)


def test_synthetic_shapes_and_types(synth):
    inter, ratings = synth.interactions, synth.ratings
    assert inter.shape == (300, 200)
    assert inter.nnz == 12_000
    assert np.all(inter.matrix.data == 1.0)
    assert np.all(inter.user_counts() >= 5)
    assert inter.users.ids_array.tolist() == list(range(300))
    assert inter.items.ids_array.tolist() == list(range(200))
    assert ratings.users is inter.users
    assert ratings.items is inter.items
    np.testing.assert_array_equal(ratings.matrix.indptr, inter.matrix.indptr)
    np.testing.assert_array_equal(ratings.matrix.indices, inter.matrix.indices)
    r = ratings.matrix.data
    assert r.min() >= 1
    assert r.max() <= 5
    np.testing.assert_array_equal(r, np.round(r))
    assert len(np.unique(r)) == 5
    assert inter.timestamps.dtype == np.int64
    assert synth.item_features.ids == inter.items
    assert synth.user_features.ids == inter.users
    assert synth.item_features.n_features == 12 + 40
    assert synth.user_factors.shape == (300, 8)
    assert synth.item_factors.shape == (200, 8)
    # lognormal activity: counts vary
    assert inter.user_counts().max() > 4 * np.median(inter.user_counts())


def test_synthetic_deterministic(synth):
    again = datasets.synthetic(300, 200, 12_000, random_state=7)
    assert (again.interactions.matrix != synth.interactions.matrix).nnz == 0
    np.testing.assert_array_equal(again.interactions.timestamps, synth.interactions.timestamps)
    np.testing.assert_array_equal(again.ratings.matrix.data, synth.ratings.matrix.data)
    assert (again.item_features.matrix != synth.item_features.matrix).nnz == 0
    other = datasets.synthetic(300, 200, 12_000, random_state=8)
    assert (other.interactions.matrix != synth.interactions.matrix).nnz > 0


def test_synthetic_planted_structure(synth):
    """The planted factors rank held-out items better than popularity does."""
    train, test = split.random_holdout(synth.interactions, random_state=0)
    seen = train.matrix.toarray() > 0
    truth = test.matrix.toarray() > 0
    pop = np.log1p(train.item_counts())

    def precision(scores):
        scores = np.where(seen, -np.inf, scores)
        top = np.argsort(-scores, axis=1)[:, :10]
        has = truth.any(axis=1)
        return np.take_along_axis(truth, top, axis=1)[has].mean()

    personal = 2 * synth.user_factors @ synth.item_factors.T + pop
    assert precision(personal) > 1.3 * precision(np.tile(pop, (train.n_users, 1)))
    # genres follow the item factors: items of one genre are closer than random pairs
    g = synth.item_genres
    same = g[:, None] == g[None, :]
    sim = synth.item_factors @ synth.item_factors.T
    assert sim[same].mean() > sim[~same].mean() + 0.1


def test_synthetic_timestamps_increase_per_user(synth):
    inter = synth.interactions
    m, ts = inter.matrix, inter.timestamps
    for u in range(0, inter.n_users, 37):
        row_ts = np.sort(ts[m.indptr[u] : m.indptr[u + 1]])
        assert np.all(np.diff(row_ts) > 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_interactions": 10}, r"n_interactions must be in \[5 \* n_users"),
        ({"n_users": 0}, "n_users must be an int >= 1"),
        ({"noise": -1.0}, "noise must be a finite number >= 0"),
        ({"noise": 0.0}, "noise must be > 0"),
    ],
)
def test_synthetic_validation(kwargs, match):
    args = {"n_users": 10, "n_items": 20, "n_interactions": 100}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        datasets.synthetic(**args)


def test_synthetic_dense_limit():
    data = datasets.synthetic(3, 6, 18, random_state=1)
    assert data.interactions.nnz == 18  # every user interacted with every item


# ------------------------------------------------------------------ MovieLens fixtures
def write_ml100k(folder: Path) -> Path:
    folder.mkdir()
    (folder / "u.data").write_text(
        "1\t10\t4\t881250949\n1\t20\t3\t881250950\n2\t10\t5\t881250000\n"
    )
    genres = "\n".join(f"{g}|{k}" for k, g in enumerate(datasets.ML100K_GENRES)) + "\n\n"
    (folder / "u.genre").write_text(genres)
    flags_10 = ["0"] * 19
    flags_10[1] = flags_10[5] = "1"  # Action, Comedy
    flags_20 = ["0"] * 19
    flags_20[8] = "1"  # Drama
    flags_30 = ["0"] * 19
    lines = [
        "10|Caf\xe9 Society (1995)|01-Jan-1995||http://x|" + "|".join(flags_10),
        "20|Drama (1996)|01-Jan-1996||http://y|" + "|".join(flags_20),
        "30|Unrated (1997)|01-Jan-1997||http://z|" + "|".join(flags_30),
    ]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def test_load_ml100k(tmp_path):
    ml = datasets.load_movielens(write_ml100k(tmp_path / "ml-100k"))
    assert ml.variant == "ml-100k"
    r = ml.ratings
    assert r.users.ids_array.tolist() == [1, 2]
    assert r.items.ids_array.tolist() == [10, 20]
    np.testing.assert_array_equal(r.matrix.toarray(), [[4, 3], [5, 0]])
    np.testing.assert_array_equal(r.timestamps, [881250949, 881250950, 881250000])
    f = ml.item_features
    assert f.ids == r.items
    assert f.names.tolist() == ["genre=Action", "genre=Comedy", "genre=Drama"]
    np.testing.assert_array_equal(f.matrix.toarray(), [[1, 1, 0], [0, 0, 1]])
    assert ml.item_titles[10] == "Café Society (1995)"
    assert ml.item_titles[30] == "Unrated (1997)"
    assert ml.item_tags is None
    uf = ml.user_features
    assert uf.ids == r.users
    assert "occupation=technician" in uf.names.tolist()
    assert "age=18-24" in uf.names.tolist()


def test_load_ml1m(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n2::661::3::978302109\n")
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n".encode("latin-1")
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ml = datasets.load_movielens(folder, "ml-1m")
    assert ml.ratings.shape == (2, 2)
    np.testing.assert_array_equal(ml.ratings.matrix.toarray(), [[0, 5], [3, 0]])
    assert ml.item_features.names.tolist() == [
        "genre=Animation",
        "genre=Children's",
        "genre=Drama",
        "genre=Musical",
    ]
    np.testing.assert_array_equal(ml.item_features.matrix.toarray(), [[1, 1, 0, 1], [0, 0, 1, 0]])
    assert ml.item_titles[1193].startswith("One Flew")
    assert ml.user_features.shape[0] == 2


def write_latest(folder: Path) -> Path:
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n5,1,0.5,1\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation\n"
        '3,"American President, The (1995)",Comedy|Drama|Romance\n'
        "4,Nothing (2000),(no genres listed)\n"
    )
    (folder / "tags.csv").write_text(
        'userId,movieId,tag,timestamp\n2,1,pixar,1\n3,1,Pixar,2\n2,3,"funny, smart",3\n'
        "2,4,unrated,4\n"
    )
    return folder


def test_load_latest_small(tmp_path):
    ml = datasets.load_movielens(write_latest(tmp_path / "ml-latest-small"))
    assert ml.variant == "ml-latest-small"
    r = ml.ratings
    assert r.users.ids_array.tolist() == [1, 5]
    assert r.items.ids_array.tolist() == [1, 3]
    np.testing.assert_array_equal(r.matrix.toarray(), [[4.0, 4.5], [0.5, 0]])
    assert ml.item_titles[3] == "American President, The (1995)"
    assert ml.item_titles[4] == "Nothing (2000)"
    assert ml.item_features.n_features == 5
    tags = ml.item_tags
    assert tags.ids == r.items
    assert tags.names.tolist() == ["tag=funny, smart", "tag=pixar"]
    np.testing.assert_array_equal(tags.matrix.toarray(), [[0, 2], [1, 0]])


def test_load_movielens_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not one"):
        datasets.load_movielens(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no MovieLens ratings file"):
        datasets.load_movielens(empty)
    folder = write_ml100k(tmp_path / "ml-100k")
    with pytest.raises(ValueError, match="does not match the files"):
        datasets.load_movielens(folder, "ml-1m")
    with pytest.raises(ValueError, match="variant must be one of"):
        datasets.load_movielens(folder, "ml-5k")
    (folder / "u.data").write_text("1\tx\t3\t4\n")
    with pytest.raises(ValueError, match="not a MovieLens ratings file"):
        datasets.load_movielens(folder)


# ------------------------------------------------------------------ download
def make_zip(tmp_path: Path, members: dict[str, str]) -> tuple[str, str]:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return path.as_uri(), digest


def latest_members(prefix: str) -> dict[str, str]:
    return {
        f"{prefix}/ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,10\n2,1,3.0,20\n",
        f"{prefix}/movies.csv": "movieId,title,genres\n1,Toy Story (1995),Animation\n",
    }


def test_download_verifies_and_caches(tmp_path):
    url, digest = make_zip(tmp_path, latest_members("ml-latest-small"))
    cache = tmp_path / "cache"
    folder = datasets.download_movielens("ml-latest-small", cache, url=url, sha256=digest)
    assert folder == cache / "ml-latest-small"
    ml = datasets.load_movielens(folder)
    assert isinstance(ml.ratings, Interactions)
    assert ml.ratings.nnz == 2
    (tmp_path / "archive.zip").unlink()  # second call is served from the cache
    assert datasets.download_movielens("ml-latest-small", cache, url=url) == folder


def test_download_bad_hash(tmp_path):
    url, _ = make_zip(tmp_path, latest_members("ml-x"))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"sha256 mismatch.*expected 0000"):
        datasets.download_movielens("ml-x", cache, url=url, sha256="0000")
    assert not (cache / "ml-x").exists()
    assert list(cache.iterdir()) == []  # temporary download removed


def test_download_rejects_path_traversal(tmp_path):
    members = latest_members("ml-x")
    members["../evil.txt"] = "gotcha"
    url, digest = make_zip(tmp_path, members)
    with pytest.raises(ValueError, match=r"unsafe zip member '\.\./evil\.txt'"):
        datasets.download_movielens("ml-x", tmp_path / "cache", url=url, sha256=digest)
    assert not (tmp_path / "evil.txt").exists()
    url, digest = make_zip(tmp_path, {"/abs.txt": "x"})
    with pytest.raises(ValueError, match="unsafe zip member"):
        datasets.download_movielens("ml-y", tmp_path / "cache", url=url, sha256=digest)


def test_download_unpinned_warns_and_env_cache(tmp_path, monkeypatch):
    url, digest = make_zip(tmp_path, latest_members("ml-z"))
    monkeypatch.setenv("TASTEBUD_DATA", str(tmp_path / "envcache"))
    with pytest.warns(_errors.DataWarning, match=f"sha256 is {digest}"):
        folder = datasets.download_movielens("ml-z", url=url)
    assert folder == tmp_path / "envcache" / "ml-z"
    with pytest.raises(ValueError, match="variant must be a release name"):
        datasets.download_movielens("../x", tmp_path, url=url)


def test_download_not_a_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="is not a zip file"):
        datasets.download_movielens("ml-q", tmp_path / "c", url=bad.as_uri(), sha256=digest)
