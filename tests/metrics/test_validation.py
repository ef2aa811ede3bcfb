"""Bad input raises clear errors before any kernel runs."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from tastebud import metrics as M

REL = sp.csr_array(np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
REC = np.array([[0, 1], [2, 3]])


@pytest.mark.parametrize(
    ("recommended", "error", "match"),
    [
        (np.array([0, 1]), ValueError, "must be a 2-D array of shape \\(n_users, k\\); got 1-D"),
        (
            np.array([[0.0, 1.0], [2.0, 3.0]]),
            TypeError,
            "integer array of item indices; got dtype float64",
        ),
        (np.array([[True], [False]]), TypeError, "got dtype bool"),
        (
            np.array([[0, 4], [1, 2]]),
            ValueError,
            "in \\[-1, 4\\) \\(-1 = padding\\); row 0 holds 4",
        ),
        (np.array([[0, 1], [-2, 2]]), ValueError, "row 1 holds -2"),
        (
            np.array([[0, 0], [1, 2]]),
            ValueError,
            "must not repeat an item within a row; row 0 lists item 0",
        ),
        (
            np.array([[0, 1], [2, 3], [0, 1]]),
            ValueError,
            "recommended has 3 rows but relevant has 2",
        ),
        (sp.csr_array(REC), TypeError, "dense 2-D integer array"),
    ],
)
def test_bad_recommended(recommended, error, match):
    with pytest.raises(error, match=match):
        M.ranking_metrics(recommended, REL, k=2)


def test_duplicates_and_range_only_checked_in_evaluated_prefix():
    rec = np.array([[0, 1, 1, 99], [2, 3, 3, 99]])
    assert M.precision_at_k(rec, REL, k=2) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="repeat"):
        M.precision_at_k(rec, REL, k=3)
    # padding slots may repeat
    assert M.precision_at_k(np.array([[0, -1, -1], [-1, -1, 1]]), REL, k=3) == pytest.approx(1 / 3)


@pytest.mark.parametrize("k", [0, -1, 2.0, True, "3", None])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        M.ndcg_at_k(REC, REL, k=k)


@pytest.mark.parametrize(
    ("relevant", "error", "match"),
    [
        (REL.toarray(), TypeError, "relevant must be a scipy.sparse matrix"),
        (sp.csr_array(np.array([[np.nan, 1.0], [1.0, 0.0]])), ValueError, "must not be NaN"),
        (sp.csr_array(np.array([[np.inf, 1.0], [1.0, 0.0]])), ValueError, "must be finite"),
        (sp.csr_array(np.array([[-1.0, 1.0], [1.0, 0.0]])), ValueError, "must be >= 0"),
        (sp.csr_array((3, 4)), ValueError, "recommended has 2 rows but relevant has 3"),
    ],
)
def test_bad_relevant(relevant, error, match):
    with pytest.raises(error, match=match):
        M.ranking_metrics(REC, relevant, k=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ("precision", "ndgc")}, "metrics must be a non-empty sequence"),
        ({"metrics": ()}, "metrics must be a non-empty sequence"),
        ({"gains": "exp"}, "gains must be one of 'binary', 'graded'; got 'exp'"),
        ({"gain_function": "log"}, "gain_function must be one of"),
        ({"recall_denominator": "k"}, "recall_denominator must be one of"),
        ({"precision_denominator": "relevant"}, "precision_denominator must be one of"),
        ({"map_denominator": "k"}, "map_denominator must be one of"),
        ({"empty": "drop"}, "empty must be one of 'nan', 'zero'"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.ranking_metrics(REC, REL, k=2, **kwargs)


def test_bad_reduce():
    with pytest.raises(ValueError, match="reduce must be one of 'mean', 'none'; got 'sum'"):
        M.precision_at_k(REC, REL, reduce="sum")


def test_auc_validation():
    scores = np.zeros((2, 4))
    with pytest.raises(ValueError, match="scores must not contain NaN"):
        M.auc(np.full((2, 4), np.nan), REL)
    with pytest.raises(ValueError, match="2-D array of shape \\(n_users, n_items\\)"):
        M.auc(np.zeros(4), REL)
    with pytest.raises(ValueError, match="relevant must have 3 columns"):
        M.auc(np.zeros((2, 3)), REL)
    with pytest.raises(ValueError, match="n_negatives must be an int >= 1"):
        M.auc(scores, REL, n_negatives=0)
    with pytest.raises(TypeError, match="scores must be a numeric array"):
        M.auc(np.full((2, 4), "x"), REL)


def test_graded_nan_rejected_even_for_binary_gains():
    rel = sp.csr_array(([np.nan], ([0], [0])), shape=(1, 3))
    with pytest.raises(ValueError, match="NaN"):
        M.precision_at_k(np.array([[0]]), rel)


def test_empty_inputs():
    rec = np.empty((0, 3), dtype=np.int64)
    rel = sp.csr_array((0, 5))
    out = M.ranking_metrics(rec, rel, k=3)
    assert all(v.shape == (0,) for v in out.values())
    assert np.isnan(M.ndcg_at_k(rec, rel))
    # zero-width lists: every slot empty
    assert M.precision_at_k(np.empty((2, 0), dtype=np.int64), REL, k=5) == 0.0


def test_import_does_not_compile():
    code = (
        "import tastebud.metrics, tastebud.kernels.metrics as k, sys\n"
        "from numba.core.registry import CPUDispatcher\n"
        "d = [v for v in vars(k).values() if isinstance(v, CPUDispatcher)]\n"
        "assert d and all(not f.signatures for f in d), [f for f in d if f.signatures]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=None)
