"""Tests of ``Features``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud.data import Features, Vocabulary


def test_from_multilabel_sep_and_lists():
    f = Features.from_multilabel(
        [10, 20, 30], ["Action|Comedy", "", "Comedy|Comedy"], sep="|", prefix="g="
    )
    assert f.names.tolist() == ["g=Action", "g=Comedy"]
    np.testing.assert_array_equal(f.matrix.toarray(), [[1, 1], [0, 0], [0, 1]])
    assert f.matrix.dtype == np.float32
    assert f.ids.ids_array.tolist() == [10, 20, 30]
    g = Features.from_multilabel(["a", "b"], [["x", "y"], None])
    np.testing.assert_array_equal(g.matrix.toarray(), [[1, 1], [0, 0]])
    assert g.n_features == 2
    assert "n_features=2" in repr(g)
    with pytest.raises(ValueError, match=r"labels must have one entry per id \(2\); got 1"):
        Features.from_multilabel(["a", "b"], [["x"]])
    with pytest.raises(TypeError, match="labels must be strings"):
        Features.from_multilabel(["a"], [[1]])


def test_from_categorical():
    f = Features.from_categorical(
        [1, 2, 3], {"age": ["18-24", "25-34", "18-24"], "country": ["US", None, "DE"]}
    )
    assert f.names.tolist() == ["age=18-24", "age=25-34", "country=DE", "country=US"]
    np.testing.assert_array_equal(f.matrix.toarray(), [[1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 1, 0]])
    with pytest.raises(ValueError, match=r"column 'age' must have one entry per id \(3\)"):
        Features.from_categorical([1, 2, 3], {"age": ["a"]})
    with pytest.raises(TypeError, match="non-empty dict"):
        Features.from_categorical([1], {})


def test_from_tags_counts():
    pairs = [(1, "funny"), (1, "funny "), (2, "dark"), (1, "dark"), (3, "")]
    f = Features.from_tags([1, 2, 3], pairs)
    assert f.names.tolist() == ["dark", "funny"]
    np.testing.assert_array_equal(f.matrix.toarray(), [[1, 2], [1, 0], [0, 0]])
    arrays = Features.from_tags([1, 2], (np.array([2, 2]), np.array(["a", "a"])), prefix="t=")
    np.testing.assert_array_equal(arrays.matrix.toarray(), [[0], [2]])
    assert arrays.names.tolist() == ["t=a"]
    with pytest.raises(KeyError, match=r"unknown entity id.*9"):
        Features.from_tags([1, 2], [(9, "x")])
    with pytest.raises(ValueError, match="pairs"):
        Features.from_tags([1], ["x"])


def test_from_numeric():
    x = np.array([1.0, 2.0, 3.0, 6.0])
    f = Features.from_numeric(["a", "b", "c", "d"], {"x": x, "c": [5, 5, 5, 5]})
    dense = f.matrix.toarray()
    np.testing.assert_allclose(dense[:, 0], (x - x.mean()) / x.std(), rtol=1e-6)
    np.testing.assert_array_equal(dense[:, 1], 0)  # constant column
    mm = Features.from_numeric(["a", "b", "c", "d"], {"x": x}, scale="minmax")
    np.testing.assert_allclose(mm.matrix.toarray()[:, 0], [0, 0.2, 0.4, 1.0], rtol=1e-6)
    raw = Features.from_numeric(["a", "b", "c", "d"], {"x": x}, scale=None)
    np.testing.assert_array_equal(raw.matrix.toarray()[:, 0], x)
    with pytest.raises(ValueError, match="column 'x' must be finite"):
        Features.from_numeric([1, 2], {"x": [1.0, np.nan]})
    with pytest.raises(TypeError, match="column 'x' must be numeric"):
        Features.from_numeric([1, 2], {"x": ["a", "b"]})
    with pytest.raises(ValueError, match="scale must be"):
        Features.from_numeric([1], {"x": [1.0]}, scale="log")  # type: ignore[arg-type]


def test_from_text_matches_sklearn():
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    texts = ["space opera with robots", "robots in love", None]
    f = Features.from_text([1, 2, 3], texts)
    ref = sklearn_text.TfidfVectorizer().fit(["space opera with robots", "robots in love", ""])
    assert f.names.tolist() == ref.get_feature_names_out().tolist()
    np.testing.assert_allclose(
        f.matrix.toarray(),
        ref.transform(["space opera with robots", "robots in love", ""]).toarray(),
        rtol=1e-6,
    )
    with pytest.raises(TypeError, match="texts must be strings"):
        Features.from_text([1], [3])


def test_tfidf_matches_sklearn_transformer():
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    counts = sp.csr_matrix(np.array([[1, 2, 0], [0, 1, 1], [0, 0, 0], [3, 0, 1]], dtype=float))
    f = Features(counts, [1, 2, 3, 4], ["a", "b", "c"])
    ref = sklearn_text.TfidfTransformer(norm="l2", smooth_idf=True).fit_transform(counts)
    np.testing.assert_allclose(f.tfidf().matrix.toarray(), ref.toarray(), rtol=1e-6)


def test_concat_align_identity():
    a = Features.from_multilabel([1, 2], [["x"], ["y"]], prefix="g=")
    b = Features.from_tags([2, 3], [(2, "t"), (3, "t")], prefix="t=")
    c = Features.concat([a, b], weights=[1.0, 0.5])
    assert c.ids.ids_array.tolist() == [1, 2, 3]
    assert c.names.tolist() == ["g=x", "g=y", "t=t"]
    np.testing.assert_array_equal(c.matrix.toarray(), [[1, 0, 0], [0, 1, 0.5], [0, 0, 0.5]])
    al = c.align(Vocabulary([3, 9, 1], "item"))
    assert al.ids.ids_array.tolist() == [3, 9, 1]
    np.testing.assert_array_equal(al.matrix.toarray(), [[0, 0, 0.5], [0, 0, 0], [1, 0, 0]])
    assert c.align(c.ids) is c
    ident = Features.identity(["p", "q"])
    np.testing.assert_array_equal(ident.matrix.toarray(), np.eye(2))
    assert ident.names.tolist() == ["id=p", "id=q"]
    with pytest.raises(ValueError, match="distinct across blocks"):
        Features.concat([a, a])
    with pytest.raises(ValueError, match=r"one value per block \(2\); got 1"):
        Features.concat([a, b], weights=[1.0])
    with pytest.raises(TypeError, match="non-empty sequence of Features"):
        Features.concat([])


def test_constructor_validation():
    with pytest.raises(ValueError, match=r"matrix shape must be \(n_ids, n_names\)"):
        Features(np.ones((2, 2)), [1, 2], ["a"])
    with pytest.raises(ValueError, match="feature values must be finite"):
        Features(np.array([[np.nan]]), [1], ["a"])
    with pytest.raises(ValueError, match="names must be distinct"):
        Features(np.ones((1, 2)), [1], ["a", "a"])
    with pytest.raises(ValueError, match="ids must be unique"):
        Features(np.ones((2, 1)), [1, 1], ["a"])


def test_align_refuses_string_ids_against_integer_ids():
    """Aligning "10" to 10 would match nothing and silently empty every row."""
    feats = Features.from_multilabel(["10", "20"], [["Action"], ["Drama"]])
    with pytest.raises(TypeError, match="strings"):
        feats.align(Vocabulary([10, 20]))
    ints = Features.from_multilabel([10, 20], [["Action"], ["Drama"]])
    assert ints.align(Vocabulary([20, 30, 10])).matrix.nnz == 2
