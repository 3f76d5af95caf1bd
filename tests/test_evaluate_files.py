"""`synful evaluate` and `synful export` on files: CREMI HDF5 and sample-store ground truth,
masks, sweeps, outputs, the export round trip, bad input and the no-torch rule."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import zarr

from synful.cli import main
from synful.evaluate import evaluate_files, evaluate_files_with_errors
from synful.io.cremi import CremiSample, CremiVolume, write_cremi
from synful.io.synapse_table import annotations_from_synapses, make_synapses, write_synapses
from synful.io.zarr_array import write_volume

VOXEL = (40, 4, 4)
SEG_OFFSET = (40, 80, 80)


def segmentation():
    # 25 segments of 50 x 50 voxels (200 x 200 nm) in y, x; block (by, bx) has label 1 + 5 by + bx
    y, x = np.meshgrid(np.arange(250), np.arange(250), indexing="ij")
    plane = (1 + (y // 50) * 5 + (x // 50)).astype(np.uint64)
    return np.broadcast_to(plane, (8, 250, 250)).copy()


GT = make_synapses(
    [[200, 180, 180], [200, 580, 580], [200, 980, 180]],
    [[200, 180, 380], [200, 580, 780], [200, 980, 380]],
    ids=[10, 11, 12],
)
PRED = make_synapses(
    [[200, 190, 190], [200, 160, 180], [200, 580, 780], [200, 580, 600], [200, 980, 180]],
    [[200, 190, 390], [200, 160, 380], [200, 580, 580], [200, 600, 600], [200, 980, 1500]],
    score=[0.9, 0.8, 0.3, 0.95, 0.1],
)
# p0 matches g0; p1 duplicates p0 (30 nm away); p2 is g1 reversed; p3 lies within one segment;
# p4's post point is outside the segmentation (the label of the nearest voxel, far from any
# true post); g1, g2 are missed.


def counts(metrics):
    return metrics["tp"], metrics["fp"], metrics["fn"]


@pytest.fixture
def files(tmp_path):
    gt_hdf = tmp_path / "gt.hdf"
    write_cremi(
        gt_hdf,
        CremiSample(
            neuron_ids=CremiVolume(segmentation(), VOXEL, SEG_OFFSET),
            annotations=annotations_from_synapses(GT, offset=(0, 40, 40)),
        ),
    )
    store = tmp_path / "sample.zarr"
    group = zarr.open_group(str(store), mode="w")
    write_volume(group, "neuron_ids", segmentation(), VOXEL, SEG_OFFSET)
    mask = np.zeros((8, 125, 125), np.uint8)
    mask[:, :100, :] = 1  # world y < 80 + 8 * 100 = 880: excludes g2 and p4
    write_volume(group, "masks/validation", mask, (40, 8, 8), SEG_OFFSET)
    write_synapses(GT, tmp_path / "sample.parquet")
    pred = tmp_path / "pred.parquet"
    write_synapses(PRED, pred)
    return {"hdf": gt_hdf, "store": store, "pred": pred, "dir": tmp_path}


def test_cremi_and_sample_store_ground_truth_agree(files, caplog):
    with caplog.at_level("WARNING"):
        from_hdf = evaluate_files(files["pred"], files["hdf"])
    assert "outside the ground-truth segmentation" in caplog.text
    from_store = evaluate_files(files["pred"], files["store"])
    assert counts(from_hdf) == counts(from_store) == (1, 4, 2)
    assert from_hdf["n_pred"] == 5 and from_hdf["n_gt"] == 3
    assert from_hdf["matching_threshold_nm"] == 400.0
    assert from_hdf["precision"] == pytest.approx(0.2) and from_hdf["recall"] == pytest.approx(
        1 / 3
    )
    assert "sweep" not in from_hdf


def test_variants_sweep_and_mask(files):
    m = evaluate_files(files["pred"], files["hdf"], filter_same_seg=True)
    assert counts(m) == (1, 3, 2)
    m = evaluate_files(files["pred"], files["hdf"], filter_same_seg=True, merge_radius=250)
    assert counts(m) == (1, 2, 2)
    m = evaluate_files(files["pred"], files["hdf"], score_thresholds=[0.95, 0.1, 0.5, 0.85])
    assert [e["score_threshold"] for e in m["sweep"]] == [0.1, 0.5, 0.85, 0.95]
    assert [counts(e) for e in m["sweep"]] == [(1, 4, 2), (1, 2, 2), (1, 1, 2), (0, 1, 3)]
    assert m["best"]["score_threshold"] == 0.85
    auto = evaluate_files(files["pred"], files["hdf"], score_thresholds="auto")
    assert [e["score_threshold"] for e in auto["sweep"]] == sorted(PRED["score"].tolist())
    masked = evaluate_files(files["pred"], files["store"], mask=files["store"] / "masks/validation")
    assert counts(masked) == (1, 3, 1)
    assert masked["inputs"]["mask"].endswith("masks/validation")


def test_mask_rule_counts_a_synapse_detected_across_the_border(tmp_path):
    # the mask holds sections z < 200 nm; each true pair is detected two sections away, across
    # the mask's border, in the right neurons
    store = tmp_path / "split.zarr"
    group = zarr.open_group(str(store), mode="w")
    write_volume(group, "neuron_ids", segmentation(), VOXEL, SEG_OFFSET)
    mask = np.zeros((8, 250, 250), np.uint8)
    mask[:4] = 1
    write_volume(group, "masks/validation", mask, VOXEL, SEG_OFFSET)
    write_synapses(
        make_synapses(
            [[240, 180, 380], [120, 580, 780]], [[240, 180, 180], [120, 580, 580]], ids=[1, 2]
        ),
        tmp_path / "split.parquet",
    )
    pred = tmp_path / "pred.parquet"
    write_synapses(
        make_synapses(
            [[160, 180, 380], [280, 580, 780]], [[160, 180, 180], [280, 580, 580]], ids=[10, 20]
        ),
        pred,
    )
    mask_path = store / "masks/validation"
    # all_pairs (the default): the prediction inside found the synapse outside (neither a true
    # nor a false positive), the true pair inside was found by the prediction outside
    metrics, errors = evaluate_files_with_errors(pred, store, mask=mask_path)
    assert counts(metrics) == (1, 0, 0) and metrics["n_gt"] == 1 and errors.empty
    assert metrics["inputs"]["mask_rule"] == "all_pairs"
    # inside_pairs: each side keeps its own pair only, which do not match
    metrics, errors = evaluate_files_with_errors(
        pred, store, mask=mask_path, mask_rule="inside_pairs"
    )
    assert counts(metrics) == (0, 1, 1)
    assert sorted(zip(errors["error"], errors["cause"], errors["related_id"])) == [
        ("fn", "mask_border", 20),
        ("fp", "mask_border", 1),
    ]
    # without a mask every pair counts: both detections are right
    assert counts(evaluate_files(pred, store)) == (2, 0, 0)


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_json_csv_and_plot(files, capsys):
    out, csv, png = files["dir"] / "m.json", files["dir"] / "sweep.csv", files["dir"] / "pr.png"
    code, stdout, _ = run_cli(
        [
            "evaluate",
            "--pred",
            files["pred"],
            "--gt",
            files["hdf"],
            "--out",
            out,
            "--score-thresholds",
            "0.1",
            "0.5",
            "0.85",
            "0.95",
            "--sweep-csv",
            csv,
            "--plot",
            png,
        ],
        capsys,
    )
    assert code == 0 and "best F" in stdout
    metrics = json.loads(out.read_text())
    for key in [
        "tp",
        "fp",
        "fn",
        "precision",
        "recall",
        "fscore",
        "matching_threshold_nm",
        "n_gt",
        "n_pred",
    ]:
        assert key in metrics and all(key in e for e in metrics["sweep"]) and key in metrics["best"]
    table = pd.read_csv(csv)
    assert table["score_threshold"].tolist() == [0.1, 0.5, 0.85, 0.95]
    assert table["tp"].tolist() == [1, 1, 1, 0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in files["dir"].iterdir() if p.name.startswith(".")) == []


def test_cli_fafb_options(files, capsys):
    out = files["dir"] / "fafb.json"
    code, _, _ = run_cli(
        [
            "evaluate",
            "--pred",
            files["pred"],
            "--gt",
            files["store"],
            "--out",
            out,
            "--matching-threshold",
            "700",
            "--pre-only",
            "--merge-radius",
            "250",
            "--filter-same-seg",
        ],
        capsys,
    )
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["matching_threshold_nm"] == 700.0 and metrics["settings"]["pre_only"] is True
    assert counts(metrics) == (1, 2, 2)


def test_export_round_trip(files, capsys):
    hdf = files["dir"] / "submission.hdf"
    code, _, _ = run_cli(
        ["export", files["pred"], hdf, "--offset", "0", "40", "40", "--score-threshold", "0.5"],
        capsys,
    )
    assert code == 0
    swept = evaluate_files(files["pred"], files["hdf"], score_thresholds=[0.5])["sweep"][0]
    exported = evaluate_files(hdf, files["hdf"])
    assert counts(exported) == counts(swept) == (1, 2, 2)
    # polyadic: two rows with one pre location share a pre site and stay two pairs
    table = make_synapses([[200, 180, 180]] * 2, [[200, 180, 380], [200, 380, 180]])
    write_synapses(table, files["dir"] / "poly.csv")
    code, _, _ = run_cli(["export", files["dir"] / "poly.csv", files["dir"] / "poly.hdf"], capsys)
    assert code == 0
    assert evaluate_files(files["dir"] / "poly.hdf", files["hdf"])["n_pred"] == 2


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing_column", "missing column(s) post_x"),
        ("nan", "NaN"),
        ("no_neuron_ids", "neuron_ids"),
        ("no_table", "no synapse table"),
        ("bad_mask", "expected a mask array inside a store"),
        ("sweep_without_scores", "no score column"),
        ("csv_without_sweep", "need a score-threshold sweep"),
        ("bad_threshold_word", "--score-thresholds"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(files, capsys, case, needle):
    d = files["dir"]
    pred, gt, extra = files["pred"], files["hdf"], []
    if case == "missing_column":
        pred = d / "bad.csv"
        PRED.drop(columns=["post_x"]).to_csv(pred, index=False)
    elif case == "nan":
        pred = d / "bad.csv"
        bad = PRED.copy()
        bad.loc[2, "pre_y"] = np.nan
        bad.to_csv(pred, index=False)
    elif case == "no_neuron_ids":
        gt = d / "only_annotations.hdf"
        write_cremi(gt, CremiSample(annotations=annotations_from_synapses(GT)))
    elif case == "no_table":
        (d / "sample.parquet").unlink()
        gt = files["store"]
    elif case == "bad_mask":
        extra = ["--mask", d / "masks/validation"]
    elif case == "sweep_without_scores":
        pred = d / "pred.hdf"
        write_cremi(pred, CremiSample(annotations=annotations_from_synapses(PRED)))
        extra = ["--score-thresholds", "auto"]
    elif case == "csv_without_sweep":
        extra = ["--sweep-csv", d / "s.csv"]
    elif case == "bad_threshold_word":
        extra = ["--score-thresholds", "some"]
    out = d / "metrics.json"
    code, _, err = run_cli(["evaluate", "--pred", pred, "--gt", gt, "--out", out, *extra], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synful: error: ") and needle in lines[0]
    assert not out.exists() and not (d / "s.csv").exists()
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []


def test_export_bad_input(files, capsys):
    hdf = files["dir"] / "x.hdf"
    write_cremi(
        files["dir"] / "noscore.hdf", CremiSample(annotations=annotations_from_synapses(GT))
    )
    code, _, err = run_cli(
        ["export", files["dir"] / "noscore.hdf", hdf, "--score-threshold", "1"], capsys
    )
    assert code == 1 and "no score column" in err and not hdf.exists()
    code, _, err = run_cli(["export", files["dir"] / "missing.parquet", hdf], capsys)
    assert code == 1 and "no such file" in err and not hdf.exists()


def test_evaluate_and_export_do_not_import_torch():
    code = (
        "import synful.commands.evaluate, synful.commands.export, synful.evaluate, synful.export, sys;"
        "assert 'torch' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_empty_predictions_and_ground_truth(files, capsys):
    d = files["dir"]
    empty = d / "empty.csv"
    PRED.iloc[:0].to_csv(empty, index=False)
    gt = d / "gt_empty.hdf"
    write_cremi(gt, CremiSample(neuron_ids=CremiVolume(segmentation(), VOXEL, SEG_OFFSET)))
    for pred, truth, expected in [
        (empty, files["hdf"], (0, 0, 3)),
        (files["pred"], gt, (0, 5, 0)),
        (empty, gt, (0, 0, 0)),
    ]:
        out = d / "m.json"
        code, _, err = run_cli(
            [
                "evaluate",
                "--pred",
                pred,
                "--gt",
                truth,
                "--out",
                out,
                "--score-thresholds",
                "auto",
                "--plot",
                d / "pr.png",
            ],
            capsys,
        )
        assert code == 0, err
        metrics = json.loads(out.read_text())
        assert counts(metrics) == expected
        assert (metrics["precision"], metrics["recall"]) == (
            1.0 if expected[1] == 0 else 0.0,
            1.0 if expected[2] == 0 else 0.0,
        )


def test_ground_truth_against_itself_is_perfect(files):
    for gt in (files["hdf"], files["store"]):
        metrics = evaluate_files(files["hdf"], gt)
        assert counts(metrics) == (3, 0, 0) and metrics["fscore"] == 1.0
