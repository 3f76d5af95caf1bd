"""``synful summarize``: the workflow's evaluate_all as a command; its files equal
:func:`synful.summary.write_summary`'s from the same runs."""

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_summary import runs

from synful import cli
from synful.summary import write_summary

REPO = Path(__file__).parents[1]


def as_json(path, run_list):
    path.write_text(json.dumps([{**run, "metrics": str(run["metrics"])} for run in run_list]))
    return path


def test_the_command_writes_what_write_summary_writes(tmp_path, capsys):
    run_list, _ = runs(tmp_path)
    test = [run | {"sample": f"t{i}", "group": "clean"} for i, run in enumerate(run_list)]
    names = ["summary.csv", "f.png", "pr.png", "errors.csv", "pairs.csv", "test.csv"]
    direct, command = tmp_path / "direct", tmp_path / "command"
    write_summary(
        run_list, *(direct / n for n in names[:3]), errors_csv=direct / names[3],
        error_pairs_csv=direct / names[4], test_runs=test, test_csv=direct / names[5],
    )  # fmt: skip
    argv = [
        "summarize", as_json(tmp_path / "runs.json", run_list),
        "--summary", command / names[0], "--fscore-plot", command / names[1],
        "--pr-plot", command / names[2], "--errors-csv", command / names[3],
        "--error-pairs-csv", command / names[4],
        "--test-runs", as_json(tmp_path / "test.json", test), "--test-csv", command / names[5],
    ]  # fmt: skip
    assert cli.main([str(a) for a in argv]) == 0
    for name in names:
        if name.endswith(".csv"):
            assert (command / name).read_text() == (direct / name).read_text(), name
        else:
            assert (command / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "text, problem",
    [
        (None, "no such file"),
        ("{not json", "not a JSON list of runs"),
        ('{"metrics": "a.json"}', "expected a JSON list of runs"),
        ('[{"sample": "s1"}]', "expected a JSON list of runs"),
    ],
)
def test_bad_runs_files_are_one_line_errors(tmp_path, capsys, text, problem):
    path = tmp_path / "runs.json"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "o"
    argv = ["summarize", str(path), "--summary", str(out / "s.csv"),
            "--fscore-plot", str(out / "f.png"), "--pr-plot", str(out / "pr.png")]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"synful: error: {path}: {problem}") and err.count("\n") == 1
    assert not out.exists()


def test_a_test_table_needs_test_runs(tmp_path, capsys):
    run_list, _ = runs(tmp_path)
    out = tmp_path / "o"
    argv = ["summarize", str(as_json(tmp_path / "runs.json", run_list)),
            "--summary", str(out / "s.csv"), "--fscore-plot", str(out / "f.png"),
            "--pr-plot", str(out / "pr.png"), "--test-csv", str(out / "t.csv")]  # fmt: skip
    assert cli.main(argv) == 1
    assert "--test-csv: needs --test-runs" in capsys.readouterr().err
    assert not out.exists()


class Outputs(SimpleNamespace):
    def get(self, name, default=None):
        return getattr(self, name, default)


@pytest.mark.parametrize("with_test", [False, True])
def test_the_workflow_script_runs_the_command(tmp_path, monkeypatch, with_test):
    """workflow_scripts/evaluate_all.py hands the rule's runs to ``synful summarize``."""
    run_list, _ = runs(tmp_path)
    test = [run | {"sample": f"t{i}", "group": "g"} for i, run in enumerate(run_list)]
    out = tmp_path / "results"
    names = {"summary": "csv", "fscore_plot": "png", "pr_plot": "png", "errors": "csv",
             "error_pairs": "csv"}  # fmt: skip
    outputs = {name: str(out / f"{name}.{suffix}") for name, suffix in names.items()}
    if with_test:
        outputs["test"] = str(out / "test.csv")
    params = SimpleNamespace(
        runs=[{**r, "metrics": str(r["metrics"])} for r in run_list],
        test_runs=[{**r, "metrics": str(r["metrics"])} for r in test] if with_test else [],
    )
    job = SimpleNamespace(output=Outputs(**outputs), params=params, log=[str(tmp_path / "s.log")])
    monkeypatch.syspath_prepend(str(REPO / "workflow_scripts"))
    runpy.run_path(
        str(REPO / "workflow_scripts" / "evaluate_all.py"), init_globals={"snakemake": job}
    )
    direct = tmp_path / "direct"
    write_summary(
        run_list, direct / "s.csv", direct / "f.png", direct / "pr.png",
        errors_csv=direct / "e.csv", error_pairs_csv=direct / "p.csv",
        test_runs=test if with_test else (), test_csv=direct / "t.csv" if with_test else None,
    )  # fmt: skip
    pairs = [("summary", "s.csv"), ("errors", "e.csv"), ("error_pairs", "p.csv")]
    for name, mine in pairs + ([("test", "t.csv")] if with_test else []):
        assert Path(outputs[name]).read_text() == (direct / mine).read_text(), name
    log = (tmp_path / "s.log").read_text()
    assert log.startswith("synful summarize ") and "summary (" in log
