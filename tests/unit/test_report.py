"""The run's summary: headline rows in one shape, collected from any pipeline's metrics.json."""
from __future__ import annotations

import json
import math

import pytest

from hpcml.core import headline
from hpcml.lensing.evaluate import headline_scores
from hpcml.report import console_table, headline_rows, write_summary

SCORE, ERROR = "score", "error [ms]"


def _metrics(tmp_path, name, rows, **extra):
    path = tmp_path / name / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**extra, headline.KEY: rows}))
    return path


@pytest.fixture
def run(tmp_path):
    """Two pipelines' metrics (one with a missing score), a sweep, a consistency report, a benchmark."""
    first = headline.rows("alpha", {"new": {SCORE: 0.9, ERROR: 3.0}, "old": {SCORE: 0.7, ERROR: float("nan")}},
                          {SCORE: "higher", ERROR: "lower"}, baselines=("old",))
    second = headline.rows("beta", {"net": {SCORE: 12.5}}, {SCORE: "higher"})
    sweep = tmp_path / "sweeps" / "grid" / "summary.json"
    sweep.parent.mkdir(parents=True)
    sweep.write_text(json.dumps({"sweep": "grid", "rule": "ariel_train_gbt", "model": "gbt", "method": "grid", "metric": "val_score",
                                 "goal": "maximize", "trials": 4, "best": {"trial": "max_iter~8", "val_score": 9650.0, "parameters": {"ariel.gbt.max_iter": 8}}}))
    check = tmp_path / "ingest_report.json"
    check.write_text(json.dumps({"files": 9, "ingested": 7, "bad_files": [{"file": f"f{k}.txt", "error": f"line {k}: not a number"} for k in range(7)]}))
    bench = tmp_path / "benchmarks" / "ingest.json"
    bench.parent.mkdir()
    bench.write_text(json.dumps({"ingest": {"mb_per_s": 331.7}, "speedup": 5.2}))
    return {"metrics": [_metrics(tmp_path, "a", first, models={}), _metrics(tmp_path, "b", second)],
            "sweeps": [sweep], "checks": [check], "benchmarks": [bench]}


def test_rows_keep_one_shape_and_missing_scores_stay_missing():
    rows = headline.rows("p", {"m": {SCORE: float("inf"), ERROR: 2}}, {SCORE: "higher", ERROR: "lower"}, baselines=("m",))
    assert rows == [
        {"pipeline": "p", "model": "m", "metric": SCORE, "value": None, "better": "higher", "baseline": True},
        {"pipeline": "p", "model": "m", "metric": ERROR, "value": 2.0, "better": "lower", "baseline": True},
    ]
    with pytest.raises(ValueError, match="better must be one of"):
        headline.rows("p", {"m": {SCORE: 1.0}}, {SCORE: "bigger"})


def test_a_malformed_row_names_its_file(tmp_path):
    path = _metrics(tmp_path, "x", [{"pipeline": "p", "model": "m", "metric": SCORE, "value": 1.0}])
    with pytest.raises(ValueError, match=f"{path}: bad headline row"):
        headline_rows([path])
    assert headline_rows([_metrics(tmp_path, "y", [])]) == []
    log = tmp_path / "bench.json"
    log.write_text("starting...\n{}")
    with pytest.raises(ValueError, match=f"{log}: not JSON"):
        write_summary(tmp_path / "out", [], [], [], [log])


def test_console_table_puts_the_baseline_first_and_marks_the_best(run):
    table = console_table(headline_rows(run["metrics"]))
    lines = table.splitlines()
    alpha = lines.index(next(line for line in lines if line.startswith("alpha")))
    assert lines[alpha].split() == ["alpha", "old", "(ref)", "new"]
    assert lines[alpha + 1].split()[-2:] == ["0.7", "0.9*"]
    assert lines[alpha + 2].split()[-2:] == ["-", "3*"], "a missing value is shown as missing and never wins"
    assert "score ↑" in lines[alpha + 1] and "error [ms] ↓" in lines[alpha + 2]
    assert any(line.split() == ["beta", "net"] for line in lines)
    assert console_table([]).startswith("No headline scores")


def test_summary_files(run, tmp_path):
    out = tmp_path / "report"
    rows = write_summary(out, run["metrics"], run["sweeps"], run["checks"], run["benchmarks"])
    assert len(rows) == 5
    tsv = (out / "headline.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == ["pipeline", "model", "metric", "value", "better", "baseline"] and len(tsv) == 6
    landing = (out / "landing.html").read_text()
    for part in ("<h3>alpha</h3>", "old <i>ref</i>", "<td><b>0.9</b></td>", "Sweeps", "ariel.gbt.max_iter=8",
                 "f4.txt: line 4: not a number", "and 2 more", "ingest.mb_per_s <b>331.7</b>", "snakemake <b>"):
        assert part in landing, part
    assert "f5.txt" not in landing
    page = (out / "summary.html").read_text()
    assert page.startswith("<!doctype html>") and landing in page
    assert (out / "headline.txt").read_text() == console_table(rows)


def test_lensing_headline_has_h0_only_for_models_that_predict_it():
    point = {"theta_e": {"rmse": 0.1}, "e1": {"rmse": 0.2}}
    h0 = {"n_lenses": 10, "bias": -1.4, "h0_true": 70.0, "bias_in_sigma": -0.5}
    scores = headline_scores({"baseline": {"targets": point, "h0": h0}, "cnn": {"targets": point, "h0": None}}, {"theta_e": 0.5, "e1": 0.4})
    assert math.isclose(scores["baseline"]["RMSE / scatter (mean over lens parameters)"], (0.2 + 0.5) / 2)
    assert scores["baseline"]["H0 |bias| [%]"] == pytest.approx(2.0) and scores["baseline"]["H0 |bias| / its error"] == 0.5
    assert set(scores["cnn"]) == {"RMSE / scatter (mean over lens parameters)", "theta_E RMSE [arcsec]"}
