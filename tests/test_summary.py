"""The evaluate_all summary: per-run rows, combined rows (summed counts), best run, plots."""

import numpy as np
import pandas as pd
import pytest

from synful.errors import SynfulError
from synful.evaluate import (
    COUNT_COLUMNS,
    ERROR_COLUMNS,
    errors_path,
    evaluate_files,
    evaluate_files_with_errors,
    write_results,
)
from synful.io.cremi import CremiAnnotations, CremiSample, CremiVolume, write_cremi
from synful.io.synapse_table import make_synapses, write_synapses
from synful.summary import (
    best_group,
    format_results,
    plot_fscore_by_iteration,
    summarize_errors,
    summarize_runs,
    summarize_test,
    write_summary,
)

THRESHOLDS = [0.0, 1.0, 5.0]


def ground_truth(path):
    """Two neurons side by side (x < 40 nm: 1, else 2) and three true pairs 1 -> 2."""
    labels = np.ones((4, 16, 16), np.uint64)
    labels[:, :, 10:] = 2
    pre = [[40, 8, 20], [80, 20, 20], [120, 40, 20]]
    post = [[40, 8, 60], [80, 20, 60], [120, 40, 60]]
    annotations = CremiAnnotations(
        ids=[1, 2, 3, 4, 5, 6],
        types=["presynaptic_site"] * 3 + ["postsynaptic_site"] * 3,
        locations=pre + post,
        partners=[[1, 4], [2, 5], [3, 6]],
    )
    write_cremi(path, CremiSample(neuron_ids=CremiVolume(labels), annotations=annotations))
    return np.asarray(pre, float), np.asarray(post, float)


def evaluated_run(tmp_path, name, n_correct, scores):
    """Metrics of a prediction with ``n_correct`` true pairs and one reversed (wrong) pair."""
    gt = tmp_path / f"{name}_gt.hdf"
    pre, post = ground_truth(gt)
    pred_pre = np.concatenate([pre[:n_correct], post[:1]])
    pred_post = np.concatenate([post[:n_correct], pre[:1]])
    table = make_synapses(pred_pre, pred_post, score=scores)
    write_synapses(table, tmp_path / f"{name}.parquet")
    metrics, errors = evaluate_files_with_errors(
        tmp_path / f"{name}.parquet", gt, score_thresholds=THRESHOLDS, errors_at="sweep"
    )
    assert metrics == evaluate_files(tmp_path / f"{name}.parquet", gt, score_thresholds=THRESHOLDS)
    # the metrics JSON and its errors table beside it (as the workflow's evaluate writes them)
    write_results(
        metrics,
        tmp_path / f"{name}.json",
        errors=errors,
        errors_csv=tmp_path / f"{name}.errors.csv",
    )
    return metrics


def runs(tmp_path):
    a = evaluated_run(tmp_path, "a", 3, [2.0, 2.0, 6.0, 0.5])
    b = evaluated_run(tmp_path, "b", 2, [6.0, 0.5, 3.0])
    c = evaluated_run(tmp_path, "c", 1, [6.0, 6.0])
    keys = {"setup": "demo", "mode": "cc", "score": "sum"}
    return [
        keys | {"iteration": 10, "sample": "s1", "metrics": tmp_path / "a.json"},
        keys | {"iteration": 10, "sample": "s2", "metrics": tmp_path / "b.json"},
        keys | {"iteration": 20, "sample": "s1", "metrics": tmp_path / "c.json"},
    ], (a, b, c)


def test_combined_rows_sum_counts(tmp_path):
    run_list, (a, b, c) = runs(tmp_path)
    assert (a["tp"], a["fp"], b["tp"], b["fp"]) == (3, 1, 2, 1)
    table, combined = summarize_runs(run_list)
    assert list(table["sample"]) == ["all", "s1", "s2", "all", "s1"]
    row = table[(table["iteration"] == 10) & (table["sample"] == "all")].iloc[0]
    assert (row["tp"], row["fp"], row["fn"]) == (5, 2, 1)
    assert row["precision"] == pytest.approx(5 / 7)
    assert row["recall"] == pytest.approx(5 / 6)
    # at score >= 1 the wrong pair of a (0.5) and the true pair of b with 0.5 drop out
    sweep = {e["score_threshold"]: e for e in combined[("demo", "cc", "sum", 10)]["sweep"]}
    assert (sweep[1.0]["tp"], sweep[1.0]["fp"], sweep[1.0]["fn"]) == (4, 1, 2)
    single = table[(table["iteration"] == 20)]
    assert list(single["tp"]) == [1, 1]


def test_best_group_and_files(tmp_path):
    run_list, _ = runs(tmp_path)
    table, _ = summarize_runs(run_list)
    best = best_group(table)
    assert best["iteration"] == 10  # F 0.77 (score >= 0) beats 0.4 at iteration 20
    out = tmp_path / "out"
    written = write_summary(
        run_list, out / "summary.csv", out / "plots" / "f.png", out / "plots" / "pr.png"
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), written, check_dtype=False)
    for plot in ("f.png", "pr.png"):
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one line per setup and extraction setting, whatever the settings are called
    labels = plot_fscore_by_iteration(table, tmp_path / "f.svg")
    assert labels == ["setup=demo mode=cc score=sum"]
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")


def test_test_samples_are_scored_at_the_configuration_chosen_on_validation(tmp_path):
    run_list, _ = runs(tmp_path)
    table, combined = summarize_runs(run_list)
    best = best_group(table)
    assert (best["iteration"], best["best_score_threshold"]) == (10, 0.0)
    # test samples: the two runs' predictions again, at both iterations; the test table reads
    # iteration 10 only and at score >= 0, however the test runs of iteration 20 score
    keys = {"setup": "demo", "mode": "cc", "score": "sum"}
    test = [
        keys | {"iteration": 10, "sample": "t1", "group": "clean", "metrics": tmp_path / "a.json"},
        keys | {"iteration": 10, "sample": "t2", "group": "clean", "metrics": tmp_path / "b.json"},
        keys
        | {"iteration": 10, "sample": "t3", "group": "defects", "metrics": tmp_path / "c.json"},
        keys | {"iteration": 20, "sample": "t1", "group": "clean", "metrics": tmp_path / "c.json"},
    ]
    out = summarize_test(run_list, test, table)
    assert out["sample"].tolist() == ["t1", "t2", "t3", "all", "all"]
    assert out["group"].tolist() == ["clean", "clean", "defects", "clean", "defects"]
    assert (out["iteration"] == 10).all() and (out["score_threshold"] == 0.0).all()
    clean = out.iloc[3]
    assert (clean["tp"], clean["fp"], clean["fn"]) == (5, 2, 1)
    assert clean["fscore"] == pytest.approx(combined[("demo", "cc", "sum", 10)]["fscore"])
    defects = out.iloc[4]
    assert (defects["tp"], defects["fp"], defects["fn"]) == (1, 1, 2)
    # a threshold the test runs were not swept at, and no test run of the chosen configuration
    table.loc[table["sample"] == "all", "best_score_threshold"] = 3.0
    with pytest.raises(SynfulError, match="no sweep entry at score >= 3"):
        summarize_test(run_list, test, table)
    with pytest.raises(SynfulError, match="no test run has the configuration"):
        summarize_test(run_list, test[3:], summarize_runs(run_list)[0])
    # written beside the summary
    written = write_summary(
        run_list,
        tmp_path / "o/s.csv",
        tmp_path / "o/f.png",
        tmp_path / "o/pr.png",
        test_runs=test,
        test_csv=tmp_path / "o/test.csv",
    )
    assert len(written) == 5
    (tmp_path / "o/summary.csv").write_bytes((tmp_path / "o/s.csv").read_bytes())
    text = format_results(tmp_path / "o")
    assert "demo at iteration 10, mode cc score sum, seg -, score >= 0" in text
    assert "validation (6 true pairs): precision 0.714, recall 0.833, F 0.769" in text
    assert "clean (2 samples, 6 true pairs): precision 0.714, recall 0.833, F 0.769" in text
    assert "defects (1 sample, 3 true pairs): precision 0.500, recall 0.333, F 0.400" in text
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "o/test.csv"),
        summarize_test(run_list, test, written),
        check_dtype=False,
    )


def test_bad_inputs(tmp_path):
    with pytest.raises(SynfulError, match="no evaluated runs"):
        summarize_runs([])
    with pytest.raises(SynfulError, match="no such file"):
        summarize_runs([{"setup": "x", "sample": "s", "metrics": tmp_path / "none.json"}])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SynfulError, match="not a metrics JSON"):
        summarize_runs([{"setup": "x", "sample": "s", "metrics": tmp_path / "bad.json"}])


def test_summary_refuses_to_overwrite_an_input(tmp_path):
    """The table path given as one of the metrics files: a one-line error, nothing touched."""
    from synful.errors import SynfulError
    from synful.summary import write_summary

    metrics = tmp_path / "m.json"
    metrics.write_text('{"tp": 1}')
    runs = [{"setup": "s", "iteration": 1, "sample": "a", "metrics": str(metrics)}]
    with pytest.raises(SynfulError, match="is an input"):
        write_summary(runs, metrics, tmp_path / "f.png", tmp_path / "pr.png")
    assert metrics.read_text() == '{"tp": 1}'


def test_errors_of_the_best_configuration(tmp_path):
    """results/errors.csv: the best group's errors by cause per sample, at the score threshold
    best over all samples; the ``all`` row holds the counts the best F-score came from."""
    run_list, (a, b, _) = runs(tmp_path)
    table, combined = summarize_runs(run_list)
    best = best_group(table)
    threshold = best["best_score_threshold"]
    counts, pairs = summarize_errors(run_list, table)
    assert list(counts.columns) == [
        "setup",
        "mode",
        "score",
        "iteration",
        "sample",
        "score_threshold",
        *COUNT_COLUMNS,
    ]
    assert counts["sample"].tolist() == ["s1", "s2", "all"]
    assert (counts["iteration"] == 10).all() and (counts["score_threshold"] == threshold).all()
    at = {
        sample: next(e for e in m["sweep"] if e["score_threshold"] == threshold)
        for sample, m in (("s1", a), ("s2", b))
    }
    at["all"] = combined[("demo", "cc", "sum", 10)]["best"]
    for _, row in counts.iterrows():
        assert (row["fn"], row["fp"]) == (at[row["sample"]]["fn"], at[row["sample"]]["fp"])
    # the reversed pair of a: its post lies in the true pre's neuron next to a true post
    assert counts.loc[counts["sample"] == "s1", "fp_wrong_post_neuron"].item() == 1
    assert list(pairs.columns) == ["sample", *ERROR_COLUMNS]
    assert len(pairs) == counts.loc[counts["sample"] == "all", ["fn", "fp"]].sum(axis=1).item()

    out = tmp_path / "out"
    write_summary(
        run_list,
        out / "summary.csv",
        out / "f.png",
        out / "pr.png",
        errors_csv=out / "errors.csv",
        error_pairs_csv=out / "error_pairs.csv",
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "errors.csv"), counts, check_dtype=False)
    assert len(pd.read_csv(out / "error_pairs.csv")) == len(pairs)


def test_errors_table_must_hold_the_chosen_threshold(tmp_path):
    run_list, _ = runs(tmp_path)
    table, _ = summarize_runs(run_list)
    threshold = best_group(table)["best_score_threshold"]
    # an errors table at another threshold only (as --errors-at best could leave it)
    path = errors_path(run_list[0]["metrics"])
    errors = pd.read_csv(path)
    other = errors[errors["score_threshold"] != threshold]
    other.to_csv(path, index=False)
    with pytest.raises(SynfulError, match="written without --errors-at sweep"):
        summarize_errors(run_list, table)
    path.unlink()
    out = tmp_path / "out"
    with pytest.raises(SynfulError, match="no such file"):
        write_summary(
            run_list, out / "s.csv", out / "f.png", out / "pr.png", errors_csv=out / "e.csv"
        )
    assert not out.exists() or not any(out.iterdir())
