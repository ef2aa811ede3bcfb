import pytest

import tastebud
from tastebud.cli import DEMO_MODELS, _build, main
from tastebud.data import datasets

SMALL = ["--users", "300", "--items", "200", "--interactions", "6000", "--quiet"]


def test_demo_prints_comparison_rating_and_ab_sections(capsys):
    assert main(["demo", *SMALL, "--models", "Popularity", "ALS", "ItemKNN", "SVD"]) == 0
    out = capsys.readouterr().out
    assert "precision@10" in out
    assert "ALS" in out
    assert "ItemKNN" in out
    assert "rating prediction" in out
    assert "A/B experiment" in out


def test_every_demo_model_is_constructible():
    features = datasets.synthetic(n_users=50, n_items=40, n_interactions=800).item_features
    for name, factory in DEMO_MODELS:
        model = _build(factory, features)
        assert isinstance(model, tastebud.Recommender), name


def test_evaluate_and_recommend_commands(tmp_path, capsys):
    assert main(["evaluate", *SMALL, "--model", "Popularity"]) == 0
    assert "ndcg@10" in capsys.readouterr().out
    data = datasets.synthetic(n_users=50, n_items=40, n_interactions=800)
    path = tmp_path / "pop.tbud"
    tastebud.Popularity().fit(data.interactions).save(path)
    assert main(["recommend", str(path), "0", "1", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 7  # header + 2 users x 3 items


def test_bad_arguments():
    with pytest.raises(SystemExit):
        main(["demo", *SMALL, "--models", "NoSuchModel"])
    with pytest.raises(SystemExit):
        main(["demo", "--data", "ml-100k"])  # needs --path
    with pytest.raises(SystemExit):
        main(["evaluate", *SMALL, "--model", "Nope"])


def test_recommend_and_evaluate_report_input_errors_in_one_line(tmp_path):
    data = datasets.synthetic(n_users=50, n_items=40, n_interactions=800)
    path = tmp_path / "pop.tbud"
    tastebud.Popularity().fit(data.interactions).save(path)
    for args, message in (
        (["0", "9999"], "unknown user"),
        (["abc"], "integers"),
        (["0", "--k", "500"], "k must be"),
    ):
        with pytest.raises(SystemExit, match=message):
            main(["recommend", str(path), *args])
    with pytest.raises(SystemExit, match="--k"):
        main(["evaluate", *SMALL, "--model", "Popularity", "--k", "0"])


def test_evaluate_model_names_ignore_case(capsys):
    assert main(["evaluate", *SMALL, "--model", "popularity"]) == 0
    assert "ndcg@10" in capsys.readouterr().out
