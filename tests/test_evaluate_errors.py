"""Errors by cause (synful.evaluate.errors): one hand-made scene per cause, the counts agree with
the score, the post indicator near a true post, and `synful evaluate --errors-csv`."""

import json

import numpy as np
import pandas as pd
import pytest
import zarr
from _extract_stores import write_prediction_store

from synful.cli import main
from synful.evaluate import (
    COUNT_COLUMNS,
    ERROR_COLUMNS,
    FN_CAUSES,
    FP_CAUSES,
    classify_errors,
    count_errors,
    error_counts_table,
    errors_path,
    evaluate_files,
    evaluate_files_with_errors,
    post_indicator_near,
    read_errors,
)
from synful.evaluate.labels import labels_at_points
from synful.evaluate.matching import candidate_edges, solve_matching
from synful.extract.predictions import open_predictions
from synful.io.synapse_table import make_synapses, write_synapses
from synful.io.zarr_array import world_array, write_volume

T = 400.0
VOXEL = (40, 10, 10)
# neurons are stripes along x, 500 nm wide: label 1 + x // 500 (x in [0, 3000) nm)
SHAPE = (25, 300, 300)


def stripes():
    x = np.arange(SHAPE[2]) * VOXEL[2]
    return np.broadcast_to((1 + x // 500).astype(np.uint64), SHAPE).copy()


SEG = stripes()
SEG_ARRAY = world_array(SEG, VOXEL, (0, 0, 0))


def labels(pre, post):
    pre, post = np.asarray(pre, float).reshape(-1, 3), np.asarray(post, float).reshape(-1, 3)
    return np.stack(
        [
            labels_at_points(SEG_ARRAY, pre),
            labels_at_points(SEG_ARRAY, post),
        ],
        axis=1,
    )


def table(pairs, ids=None, score=None):
    pre = [p for p, _ in pairs]
    post = [q for _, q in pairs]
    return make_synapses(
        np.asarray(pre, float).reshape(-1, 3),
        np.asarray(post, float).reshape(-1, 3),
        ids=ids,
        score=score,
    )


# one true pair 2 -> 3: pre at x 700 (neuron 2), post at x 1100 (neuron 3)
PRE, POST = (500, 1000, 700), (500, 1000, 1100)


def classify(gt, pred, score_threshold=None, filter_same_seg=False, **context):
    """Label both sides on SEG, keep and match as `synful evaluate` does, classify."""
    gt_labels = labels(gt[["pre_z", "pre_y", "pre_x"]], gt[["post_z", "post_y", "post_x"]])
    pred_labels = labels(pred[["pre_z", "pre_y", "pre_x"]], pred[["post_z", "post_y", "post_x"]])
    scored = np.ones(len(pred), bool)
    if score_threshold is not None:
        scored = pred["score"].to_numpy() >= score_threshold
    same = pred_labels[:, 0] == pred_labels[:, 1] if filter_same_seg else np.zeros(len(pred), bool)
    kept = scored & ~same
    edges = candidate_edges(
        pred[["pre_z", "pre_y", "pre_x"]],
        pred[["post_z", "post_y", "post_x"]],
        pred_labels,
        gt[["pre_z", "pre_y", "pre_x"]],
        gt[["post_z", "post_y", "post_x"]],
        gt_labels,
        T,
    )
    matches = solve_matching(edges, T, kept)
    errors = classify_errors(
        gt,
        gt_labels,
        pred,
        pred_labels,
        kept,
        matches,
        T,
        filtered=scored & same,
        score_threshold=score_threshold,
        **context,
    )
    assert list(errors.columns) == list(ERROR_COLUMNS)
    counts = count_errors(errors)
    assert counts["fn"] == len(gt) - len(matches)
    assert counts["fp"] == int(kept.sum()) - len(matches)
    return errors


def causes(errors, kind):
    return errors.loc[errors["error"] == kind, "cause"].tolist()


def one(errors, kind):
    rows = errors[errors["error"] == kind]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_merged_with_neighbour_and_duplicate():
    # two true pairs 2 -> 3, 200 nm apart; one prediction between them matches one of them
    gt = table([(PRE, POST), ((500, 1200, 700), (500, 1200, 1100))], ids=[1, 2])
    pred = table([((500, 1100, 700), (500, 1100, 1100))], ids=[10])
    fn = one(classify(gt, pred), "fn")
    assert fn["cause"] == "merged_with_neighbour" and fn["related_id"] == 10
    assert fn["related_distance_nm"] == pytest.approx(100.0)
    # two predictions onto one true pair: the farther one is a duplicate
    gt = table([(PRE, POST)], ids=[1])
    pred = table([(PRE, POST), ((500, 1050, 700), (500, 1050, 1100))], ids=[10, 11])
    errors = classify(gt, pred)
    assert causes(errors, "fn") == []
    fp = one(errors, "fp")
    assert (fp["cause"], fp["id"], fp["related_id"]) == ("duplicate", 11, 1)


def test_vector_ends_in_the_wrong_neuron():
    gt = table([(PRE, POST)], ids=[1])
    pred = table([((500, 1000, 300), (500, 1000, 1120))], ids=[10])  # pre in neuron 1
    errors = classify(gt, pred)
    assert causes(errors, "fn") == ["wrong_pre_neuron"] == causes(errors, "fp")
    assert one(errors, "fp")["pre_label"] == 1 and one(errors, "fp")["post_label"] == 3
    # the vector ends in the post's own neuron and --filter-same-seg dropped the prediction:
    # still the vector's fault, not a missing detection; no false positive is left
    pred = table([((500, 1000, 1300), (500, 1000, 1120))], ids=[10], score=[1.0])
    errors = classify(gt, pred, filter_same_seg=True)
    assert causes(errors, "fn") == ["wrong_pre_neuron"] and causes(errors, "fp") == []


def test_pre_too_far():
    gt = table([(PRE, POST)], ids=[1])
    pred = table([((500, 1500, 700), (500, 1000, 1100))], ids=[10])  # right neuron, 500 nm off
    errors = classify(gt, pred)
    assert causes(errors, "fn") == ["pre_too_far"] == causes(errors, "fp")


def test_post_in_a_neighbouring_neuron():
    gt = table([(PRE, POST)], ids=[1])
    pred = table([((500, 1000, 300), (500, 1000, 950))], ids=[10])  # post in neuron 2
    errors = classify(gt, pred)
    assert causes(errors, "fn") == ["wrong_post_neuron"] == causes(errors, "fp")
    assert one(errors, "fn")["related_distance_nm"] == pytest.approx(150.0)


def test_below_the_score_threshold():
    gt = table([(PRE, POST)], ids=[1])
    pred = table(
        [(PRE, POST), ((500, 2800, 700), (500, 2800, 1100))], ids=[10, 11], score=[0.1, 0.9]
    )
    errors = classify(gt, pred, score_threshold=0.5)
    fn = one(errors, "fn")
    assert (fn["cause"], fn["related_id"], fn["score_threshold"]) == (
        "below_score_threshold",
        10,
        0.5,
    )
    fp = one(errors, "fp")
    assert (fp["cause"], fp["id"], fp["score"]) == ("no_synapse_near", 11, 0.9)
    assert pd.isna(fp["related_id"])


def test_mask_border():
    gt = table([(PRE, POST)], ids=[1])
    outside = table([((500, 1000, 700), (500, 1000, 1150))], ids=[20])
    errors = classify(gt, table([]), pred_outside=outside)
    fn = one(errors, "fn")
    assert (fn["cause"], fn["related_id"]) == ("mask_border", 20)
    # a prediction whose true pair lies just outside the mask
    gt_outside = table([(PRE, POST)], ids=[2])
    errors = classify(table([]), table([(PRE, (500, 1000, 1150))], ids=[10]), gt_outside=gt_outside)
    fp = one(errors, "fp")
    assert (fp["cause"], fp["related_id"]) == ("mask_border", 2)


def test_below_threshold_or_lost_in_extraction():
    gt = table([(PRE, POST), ((500, 2500, 700), (500, 2500, 1100))], ids=[1, 2])
    # nothing near either: without the prediction store both are below threshold
    errors = classify(gt, table([]))
    assert causes(errors, "fn") == ["below_threshold"] * 2
    assert errors["post_indicator_max"].isna().all()
    # with it: the indicator near pair 1 reached the extraction threshold, near pair 2 not
    errors = classify(gt, table([]), indicator_max=[0.8, 0.3], extraction_threshold=0.5)
    assert causes(errors, "fn") == ["lost_in_extraction", "below_threshold"]
    assert errors["post_indicator_max"].tolist() == [0.8, 0.3]
    # exactly at the threshold is below it (extraction keeps indicator > threshold)
    errors = classify(gt, table([]), indicator_max=[0.5, np.nan], extraction_threshold=0.5)
    assert causes(errors, "fn") == ["below_threshold"] * 2


def test_spurious_detection():
    errors = classify(table([]), table([(PRE, POST)], ids=[10]))
    assert causes(errors, "fp") == ["no_synapse_near"]
    empty = classify(table([]), table([]))
    assert len(empty) == 0 and list(empty.columns) == list(ERROR_COLUMNS)


def test_counts_table():
    gt = table([(PRE, POST), ((500, 2500, 700), (500, 2500, 1100))], ids=[1, 2])
    pred = table([((500, 1000, 300), (500, 1000, 950)), ((500, 2800, 2700), (500, 2800, 2900))])
    a = classify(gt, pred, score_threshold=None)
    b = classify(gt, table([(PRE, POST)], ids=[5]))
    counts = error_counts_table({"s1": a, "s2": b})
    assert list(counts.columns) == ["sample", "score_threshold", *COUNT_COLUMNS]
    assert counts["sample"].tolist() == ["s1", "s2", "all"]
    assert counts["fn"].tolist() == [2, 1, 3]
    assert counts["fn_wrong_post_neuron"].tolist() == [1, 0, 1]
    assert counts["fn_below_threshold"].tolist() == [1, 1, 2]
    assert counts["fp_no_synapse_near"].tolist() == [1, 0, 1]
    for kind, all_causes in (("fn", FN_CAUSES), ("fp", FP_CAUSES)):
        assert (counts[[f"{kind}_{c}" for c in all_causes]].sum(axis=1) == counts[kind]).all()
    assert counts["score_threshold"].isna().all()


@pytest.mark.parametrize("seed", range(8))
def test_random_scenes_count_like_the_score(seed, tmp_path):
    """Every FN and FP gets exactly one cause, and they count like the metrics at each threshold."""
    rng = np.random.default_rng(seed)
    n_gt, n_pred = 30, 40
    pre = rng.uniform([0, 0, 0], [1000, 3000, 3000], (n_gt, 3))
    post = np.clip(pre + rng.normal(0, 250, (n_gt, 3)), 0, 2999)
    gt = make_synapses(pre, post, ids=np.arange(1, n_gt + 1))
    source = rng.integers(0, n_gt, n_pred)
    pred = make_synapses(
        np.clip(pre[source] + rng.normal(0, 200, (n_pred, 3)), 0, 2999),
        np.clip(post[source] + rng.normal(0, 200, (n_pred, 3)), 0, 2999),
        score=rng.uniform(0, 1, n_pred),
    )
    store = tmp_path / "gt.zarr"
    group = zarr.open_group(str(store), mode="w")
    write_volume(group, "neuron_ids", SEG, VOXEL, (0, 0, 0))
    mask = np.zeros(SHAPE, np.uint8)
    mask[:, :200, :] = 1
    write_volume(group, "masks/validation", mask, VOXEL, (0, 0, 0))
    write_synapses(gt, tmp_path / "gt.parquet")
    write_synapses(pred, tmp_path / "pred.parquet")
    options = dict(
        score_thresholds=[0.0, 0.3, 0.6, 0.9],
        filter_same_seg=bool(seed % 2),
        merge_radius=150.0 if seed >= 4 else None,
        mask=store / "masks" / "validation" if seed >= 2 else None,
        mask_rule="inside_pairs" if seed in (3, 6) else "all_pairs",
    )
    metrics, errors = evaluate_files_with_errors(
        tmp_path / "pred.parquet", store, errors_at="sweep", **options
    )
    assert metrics == evaluate_files(tmp_path / "pred.parquet", store, **options)
    for entry in metrics["sweep"]:
        rows = errors[errors["score_threshold"] == entry["score_threshold"]]
        counts = count_errors(rows)
        assert (counts["fn"], counts["fp"]) == (entry["fn"], entry["fp"])
        assert counts["fn_other"] == counts["fp_other"] == 0
    _, best = evaluate_files_with_errors(tmp_path / "pred.parquet", store, **options)
    assert set(best["score_threshold"]) <= {metrics["best"]["score_threshold"]}
    assert count_errors(best)["fn"] == metrics["best"]["fn"]


def test_post_indicator_near_stays_in_the_neuron(tmp_path):
    probabilities = np.zeros(SHAPE, np.float32)
    # near the true post (x 1100, neuron 3): 0.7 inside neuron 3, 0.95 just across in neuron 2
    probabilities[12, 100, 105] = 0.7  # voxel centre x 1055
    probabilities[12, 100, 95] = 0.95  # voxel centre x 955: neuron 2
    probabilities[12, 100, 160] = 0.99  # neuron 4 (x 1605), 505 nm away: not near
    path = write_prediction_store(
        tmp_path / "pred.zarr",
        probabilities,
        np.zeros((3, *SHAPE)),
        voxel_size=VOXEL,
        quantized=True,
    )
    store = open_predictions(path)
    points = [(500, 1000, 1100), (500, 1000, 1100), (500, 5000, 1100), (500, 2000, 2200)]
    near = post_indicator_near(store.post_indicator, SEG_ARRAY, points, [3, 2, 3, 5], T)
    assert near[0] == pytest.approx(0.7, abs=1 / 255)
    assert near[1] == pytest.approx(0.95, abs=1 / 255)
    assert np.isnan(near[2])  # the store ends at y 3000: nothing within 400 nm
    assert near[3] == 0.0


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def scene(tmp_path):
    """A sample store (stripes, a mask excluding y >= 2000 nm), true pairs, predictions and
    their prediction store."""
    store = tmp_path / "sample.zarr"
    group = zarr.open_group(str(store), mode="w")
    write_volume(group, "neuron_ids", SEG, VOXEL, (0, 0, 0))
    mask = np.zeros(SHAPE, np.uint8)
    mask[:, :200, :] = 1
    write_volume(group, "masks/validation", mask, VOXEL, (0, 0, 0))
    gt = table(
        [
            (PRE, POST),  # found
            ((500, 400, 700), (500, 400, 1100)),  # below threshold: nothing there
            ((500, 1600, 700), (500, 1600, 1100)),  # lost in extraction: indicator 0.9
            ((500, 1000, 1700), (500, 1000, 2100)),  # only a low-score prediction
        ],
        ids=[1, 2, 3, 4],
    )
    write_synapses(gt, tmp_path / "sample.parquet")
    pred = table(
        [
            (PRE, POST),
            ((500, 1000, 1700), (500, 1000, 2100)),
            ((500, 600, 2300), (500, 600, 2700)),  # spurious
        ],
        score=[5.0, 0.5, 3.0],
    )
    write_synapses(pred, tmp_path / "pred.parquet")
    probabilities = np.zeros(SHAPE, np.float32)
    probabilities[12, 160, 112] = 0.9
    write_prediction_store(
        tmp_path / "pred.zarr", probabilities, np.zeros((3, *SHAPE)), voxel_size=VOXEL
    )
    return tmp_path


def evaluate_scene(scene, out):
    """`synful evaluate` of the scene's predictions inside its validation mask, to ``out``."""
    sample = scene / "sample.zarr"
    return ["evaluate", "--pred", scene / "pred.parquet", "--gt", sample,
            "--mask", sample / "masks" / "validation", "--out", out]  # fmt: skip


def test_cli_errors_csv(scene, capsys):
    out, errors_csv = scene / "m.json", scene / "m.errors.csv"
    assert errors_path(out) == errors_csv
    code, stdout, _ = run_cli(
        [
            *evaluate_scene(scene, out),
            "--score-thresholds",
            "1",
            "--errors-csv",
            errors_csv,
            "--predictions",
            scene / "pred.zarr",
            "--extraction-threshold",
            "0.5",
        ],
        capsys,
    )
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["best"]["score_threshold"] == 1.0
    errors = read_errors(errors_csv)
    assert list(pd.read_csv(errors_csv).columns) == list(ERROR_COLUMNS)
    assert set(errors["score_threshold"]) == {1.0}
    fn = dict(
        zip(errors.loc[errors["error"] == "fn", "id"], errors.loc[errors["error"] == "fn", "cause"])
    )
    assert fn == {2: "below_threshold", 3: "lost_in_extraction", 4: "below_score_threshold"}
    assert causes(errors, "fp") == ["no_synapse_near"]
    assert count_errors(errors)["fn"] == metrics["best"]["fn"]
    assert (
        "fn 3 at score >= 1: below_score_threshold 1, lost_in_extraction 1, below_threshold 1"
        in stdout
    )
    # without the store the lost one is below threshold too; every threshold with --errors-at
    code, _, _ = run_cli(
        [
            *evaluate_scene(scene, out),
            "--score-thresholds",
            "0",
            "1",
            "--errors-csv",
            errors_csv,
            "--errors-at",
            "sweep",
        ],
        capsys,
    )
    assert code == 0
    errors = read_errors(errors_csv)
    at_zero = errors[errors["score_threshold"] == 0]
    assert sorted(causes(at_zero, "fn")) == ["below_threshold", "below_threshold"]
    assert sorted(causes(errors[errors["score_threshold"] == 1], "fn")) == [
        "below_score_threshold",
        "below_threshold",
        "below_threshold",
    ]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--predictions", "pred.zarr"], "--predictions: needs --errors-csv"),
        (["--errors-csv", "e.csv", "--vectors", "pred.zarr"], "--vectors: needs --predictions"),
        (
            ["--errors-csv", "e.csv", "--predictions", "none.zarr"],
            "none.zarr: no such prediction store",
        ),
        (["--errors-csv", "m.json"], "m.json"),
    ],
)
def test_cli_errors_bad_input(scene, capsys, extra, needle):
    code, _, err = run_cli(
        [
            "evaluate",
            "--pred",
            scene / "pred.parquet",
            "--gt",
            scene / "sample.zarr",
            "--out",
            scene / "m.json",
            *[scene / e if e.endswith((".zarr", ".csv", ".json")) else e for e in extra],
        ],
        capsys,
    )
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1
    assert not (scene / "m.json").exists() and not (scene / "e.csv").exists()
