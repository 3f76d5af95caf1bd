"""synful.timing: the per-stage time table from Snakemake benchmark files."""

from synful.timing import format_table, main, time_by_stage

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path, seconds, rss, cpu):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")


def test_stages_summed_in_pipeline_order(tmp_path, capsys):
    bench(tmp_path / "train/demo/checkpoint_10.tsv", 60.0, 500, 110)
    bench(tmp_path / "convert/a.tsv", 2.0, 100, 1)
    bench(tmp_path / "convert/b.tsv", 3.0, 120, 2)
    bench(tmp_path / "extract/demo/10/mode~cc/a.tsv", 15.0, 200, 10)
    bench(tmp_path / "evaluate_all.tsv", 3.0, 50, 3)  # a rule without wildcards
    table = time_by_stage(tmp_path)
    assert list(table["stage"]) == ["convert", "train", "extract", "evaluate_all"]
    convert = table.iloc[0]
    assert (convert["jobs"], convert["job_seconds"], convert["max_rss_mib"]) == (2, 5.0, 120)
    assert abs(table["share"].sum() - 1) < 1e-12
    assert table.iloc[1]["share"] == 60 / 83
    text = format_table(table, wall=70)
    assert "train" in text and "1:00.0" in text and "wall time" in text and "1:10.0" in text
    assert main([str(tmp_path)]) == 0
    assert "extract" in capsys.readouterr().out


def test_no_benchmarks(tmp_path):
    assert time_by_stage(tmp_path).empty
