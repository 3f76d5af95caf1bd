"""``synful import-tf`` against real TensorFlow 1 checkpoints.

TensorFlow's v1 compatibility API (graph mode, ``tf.compat.v1.layers``) builds small networks
with the structure and variable names of the original code: funlib.learn.tensorflow's
``unet`` @ 0712fee (``conv_pass`` / ``downsample`` / ``upsample`` / ``crop``, the
``decoder_%i_layer_%i`` scopes) and the heads, losses and Adam optimiser of synful's
``generate_network.py`` (``mknet``). This file re-states that structure; it copies no code.
The networks train a few Adam steps, a ``tf.compat.v1.train.Saver`` writes the checkpoint,
TensorFlow runs the forward pass, ``synful import-tf`` converts the checkpoint (without
TensorFlow), and synful's forward pass must give the same outputs after the same cropping
(TensorFlow's larger output centre-cropped to synful's; imported networks align their skip
connections as the original, ``skip_alignment: geometric``).

TensorFlow runs in a child process (``python tests/test_tf_import.py OUTDIR``), never in the
pytest process, whose later tests fork workers. It is the ``tf`` extra
(``pip install -e .[tf]``; .ci/run installs it); the tests are skipped without it except in
CI (``CI`` set), where they must run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from _original_unet import original_unet_features

from synful.checkpoint import load_checkpoint
from synful.cli import main
from synful.io.zarr_array import open_array, read, write_volume
from synful.models import build_model, normalize_raw
from synful.models.unet import centre_crop
from synful.tf_import import TFCheckpoint

PROBABILITY_TOLERANCE = 1e-4
VECTOR_TOLERANCE_NM = 1e-3
tf = v1 = None  # TensorFlow, loaded by _load_tensorflow() in the child process only


def _load_tensorflow():
    global tf, v1
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers needs tf-keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow

    tf, v1 = tensorflow, tensorflow.compat.v1
    v1.disable_eager_execution()


# --- the original network, in TensorFlow 1 ------------------------------------------------


def _conv_pass(x, kernel_sizes, num_fmaps, name, activation=True):
    # funlib unet.py conv_pass: one valid conv3d per kernel, named <name>_<i>
    for i, kernel in enumerate(kernel_sizes):
        x = v1.layers.conv3d(
            x,
            filters=num_fmaps,
            kernel_size=kernel,
            padding="valid",
            data_format="channels_first",
            activation=tf.nn.relu if activation else None,
            name=f"{name}_{i}",
        )
    return x


def _crop(x, shape):
    # funlib unet.py crop: centre crop of the spatial axes (floor on the left)
    have = x.get_shape().as_list()
    begin = [0, 0] + [(a - b) // 2 for a, b in zip(have[2:], shape[2:])]
    return tf.slice(x, begin, have[:2] + list(shape[2:]))


def _unet(x, num_fmaps, inc, factors, num_heads, layer=0):
    # funlib unet.py unet: recursive; the encoder has no scope, each decoder level lives in
    # decoder_<head>_layer_<layer>; transposed conv to this level's fmaps with ReLU; skip first
    left = _conv_pass(x, [3, 3], num_fmaps, f"unet_layer_{layer}_left")
    if layer == len(factors):
        return [left] * num_heads
    down = v1.layers.max_pooling3d(
        left,
        pool_size=factors[layer],
        strides=factors[layer],
        padding="valid",
        data_format="channels_first",
        name=f"unet_down_{layer}_to_{layer + 1}",
    )
    below = _unet(down, num_fmaps * inc, inc, factors, num_heads, layer + 1)
    outs = []
    for head, g_out in enumerate(below):
        with v1.variable_scope(f"decoder_{head}_layer_{layer}"):
            up = v1.layers.conv3d_transpose(
                g_out,
                filters=num_fmaps,
                kernel_size=factors[layer],
                strides=factors[layer],
                padding="valid",
                data_format="channels_first",
                activation=tf.nn.relu,
                name=f"unet_up_{layer + 1}_to_{layer}",
            )
            joined = tf.concat([_crop(left, up.get_shape().as_list()), up], 1)
            outs.append(_conv_pass(joined, [3, 3], num_fmaps, f"unet_layer_{layer}_right"))
    return outs


def build_original(
    tmp, *, network, factors, fmap_num, inc, mask_loss, outputs, input_shape, seed, extra_saves=()
):
    """Build, train 3 Adam steps, save as ``tmp/train_net_checkpoint_<it>`` and run TF's
    forward on a random input. Returns (prefix, input, {tensor: output}, variable names)."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        raw = v1.placeholder(tf.float32, shape=input_shape)
        batched = tf.reshape(raw, (1, 1, *input_shape))
        heads = _unet(batched, fmap_num, inc, factors, 2 if network == "dh_unet" else 1)
        if network != "dh_unet":
            heads = [heads[0], heads[0]]
        # generate_network.py: both heads are always built, vectors from output 0, mask from 1
        vectors = _conv_pass(heads[0], [1], 3, "partner_vector", activation=False)
        indicator = _conv_pass(heads[1], [1], 1, "syn_indicator", activation=False)
        out_shape = tuple(indicator.get_shape().as_list()[2:])
        pred_vectors = tf.reshape(vectors, (3, *out_shape))
        pred_indicator = tf.reshape(indicator, out_shape)
        gt_vectors = v1.placeholder(tf.float32, shape=(3, *out_shape))
        gt_indicator = v1.placeholder(tf.float32, shape=out_shape)
        vector_loss = v1.losses.mean_squared_error(gt_vectors, pred_vectors)
        if mask_loss == "ce":
            mask_term = v1.losses.sigmoid_cross_entropy(gt_indicator, pred_indicator)
            indicator_out = tf.sigmoid(pred_indicator)
        else:  # the published MSE graphs output the linear indicator
            mask_term = v1.losses.mean_squared_error(gt_indicator, pred_indicator)
            indicator_out = pred_indicator
        m_scale = 1.0 if "pred_syn_indicator_out" in outputs else 0.0
        d_scale = 1.0 if "pred_partner_vectors" in outputs else 0.0
        iteration = tf.Variable(1.0, name="training_iteration", trainable=False)
        loss = m_scale * mask_term + d_scale * vector_loss
        optimizer = v1.train.AdamOptimizer(
            learning_rate=1e-3, beta1=0.95, beta2=0.999, epsilon=1e-8
        )
        train = optimizer.apply_gradients(optimizer.compute_gradients(loss), global_step=iteration)
        model_vars = v1.global_variables()
        extra = v1.Variable(
            np.zeros((2, 2), np.float32), name="extra_layer/kernel", trainable=False
        )
        config = v1.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
        with v1.Session(graph=graph, config=config) as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(3):
                sess.run(
                    train,
                    {
                        raw: rng.uniform(-1, 1, input_shape).astype(np.float32),
                        gt_vectors: rng.normal(0, 50, (3, *out_shape)).astype(np.float32),
                        gt_indicator: (rng.uniform(size=out_shape) < 0.3).astype(np.float32),
                    },
                )
            for var in v1.trainable_variables():  # make every bias matter
                if var.op.name.endswith("/bias"):
                    var.load(rng.uniform(-0.05, 0.05, var.shape).astype(np.float32), sess)
            # widen the heads to the ranges of a trained network (tens of nm, probabilities 0..1)
            for name, factor in (
                ("partner_vector_0/kernel", 300.0),
                ("syn_indicator_0/kernel", 20.0),
            ):
                var = next(v for v in model_vars if v.op.name == name)
                var.load(sess.run(var) * factor, sess)
            step = int(sess.run(iteration))
            prefix = tmp / f"train_net_checkpoint_{step}"
            v1.train.Saver(var_list=model_vars).save(sess, str(prefix), write_meta_graph=True)
            names = {v.op.name: v for v in model_vars}
            for kind, name in extra_saves:
                var_list = dict(names)
                if kind == "missing":
                    del var_list[name]
                elif kind == "extra":
                    var_list[name] = extra
                elif kind == "shape":
                    var_list[name] = extra
                v1.train.Saver(var_list=var_list).save(
                    sess, str(tmp / kind / f"train_net_checkpoint_{step}"), write_meta_graph=False
                )
            x = rng.uniform(-1, 1, input_shape).astype(np.float32)
            values = sess.run(
                {
                    "pred_syn_indicator": pred_indicator,
                    "pred_syn_indicator_out": indicator_out,
                    "pred_partner_vectors": pred_vectors,
                },
                {raw: x},
            )
        net_config = {
            "raw": raw.name,
            "pred_partner_vectors": pred_vectors.name,
            "pred_syn_indicator": pred_indicator.name,
            "pred_syn_indicator_out": indicator_out.name,
            "input_shape": list(input_shape),
            "output_shape": list(out_shape),
            "outputs": {k: {} for k in outputs},
        }
    (tmp / "train_net_config.json").write_text(json.dumps(net_config))
    return prefix, x, values, sorted(names)


def synful_outputs(checkpoint, x):
    model = load_checkpoint(checkpoint).model
    with torch.no_grad():
        out = model(torch.from_numpy(x)[None, None])
    result = {}
    if "post_indicator" in out:
        linear = out["post_indicator"][0, 0]
        result["pred_syn_indicator"] = linear.numpy()
        result["probability"] = model.mask_probability(linear).numpy()
    if "partner_vectors" in out:
        result["pred_partner_vectors"] = out["partner_vectors"][0].numpy()
    return model, result


def compare(tf_values, ours, mask_loss):
    """Max abs differences after cropping TensorFlow's (larger, uncropped) output to ours."""
    diffs = {}
    if "pred_syn_indicator" in ours:
        shape = ours["pred_syn_indicator"].shape
        linear = centre_crop(torch.from_numpy(tf_values["pred_syn_indicator"]), shape).numpy()
        out = centre_crop(torch.from_numpy(tf_values["pred_syn_indicator_out"]), shape).numpy()
        probability = out if mask_loss == "ce" else np.clip(out, 0, 1)
        diffs["linear"] = float(np.abs(linear - ours["pred_syn_indicator"]).max())
        diffs["probability"] = float(np.abs(probability - ours["probability"]).max())
    if "pred_partner_vectors" in ours:
        shape = ours["pred_partner_vectors"].shape[1:]
        vectors = centre_crop(torch.from_numpy(tf_values["pred_partner_vectors"]), shape).numpy()
        diffs["vectors_nm"] = float(np.abs(vectors - ours["pred_partner_vectors"]).max())
        diffs["vector_scale_nm"] = float(np.abs(vectors).max())
    return diffs


def import_tf(*args):
    return main(["import-tf", *map(str, args)])


# --- the two configurations ------------------------------------------------------------------

MULTI_TASK = dict(  # like p_setup45: MT2 (dh_unet), MSE mask, both heads
    network="dh_unet",
    factors=[[1, 2, 2], [2, 2, 2]],
    fmap_num=3,
    inc=2,
    mask_loss="mse",
    outputs=["pred_syn_indicator_out", "pred_partner_vectors"],
    seed=1,
)
MASK_ONLY = (
    dict(  # like p_setup52: vanilla, CE, mask head only (the vector head is built but dropped)
        network="vanilla",
        factors=[[1, 2, 2], [1, 2, 2], [2, 2, 2]],
        fmap_num=4,
        inc=2,
        mask_loss="ce",
        outputs=["pred_syn_indicator_out"],
        seed=2,
    )
)


def _valid_input(case, minimum):
    model = build_model(
        {"downsample_factors": case["factors"], "fmap_num": 1, "fmap_inc_factor": 1}
    )
    return model.valid_input_shape(minimum)


PUBLISHED_FACTORS = dict(  # the published models' downsampling, on a narrow network
    network="vanilla",
    factors=[[1, 3, 3], [1, 3, 3], [3, 3, 3]],
    fmap_num=2,
    inc=2,
    mask_loss="ce",
    outputs=["pred_syn_indicator_out", "pred_partner_vectors"],
    seed=3,
)
CASES = {
    "multi_task": (MULTI_TASK, (30, 60, 60), []),
    "mask_only": (
        MASK_ONLY,
        (30, 90, 90),
        [
            ("missing", "decoder_0_layer_1/unet_layer_1_right_1/bias"),
            ("extra", "extra_layer/kernel"),
            ("shape", "unet_layer_2_left_1/bias"),
        ],
    ),
    "published_factors": (PUBLISHED_FACTORS, (45, 295, 295), []),
}


def build_many_variables(tmp: Path) -> None:
    """(child process) A checkpoint of 300 variables of several dtypes and shapes and 1200 with
    long names, so that its index has several data blocks; their values go to ``values.npz``."""
    rng = np.random.default_rng(4)
    dtypes = [np.float32, np.float64, np.int32, np.int64, np.float16, np.bool_, np.uint8, np.int8]
    values = {}
    graph = tf.Graph()
    with graph.as_default():
        for i in range(300):
            dtype = dtypes[i % len(dtypes)]
            shape = [(), (7,), (3, 4), (2, 3, 1, 2, 5)][i % 4]
            value = (
                rng.normal(0, 100, shape)
                if np.issubdtype(dtype, np.floating)
                else rng.integers(0, 2 if dtype is np.bool_ else 100, shape)
            ).astype(dtype)
            name = f"scope_{i % 7}/layer_{i}/{'long_' * (i % 13)}variable"
            v1.Variable(value, name=name)
            values[name] = value
        for i in range(1200):  # TensorFlow's index blocks hold 256 KiB: long, distinct names
            name = f"padding_{i:04d}/" + "x" * 250
            values[name] = np.float32(i)
            v1.Variable(values[name], name=name)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver().save(sess, str(tmp / "many"), write_meta_graph=False)
    np.savez(tmp / "values.npz", **{k.replace("/", "|"): v for k, v in values.items()})


def build_all(root: Path) -> None:
    """(child process) Build, save and run every case into ``root/<case>``."""
    _load_tensorflow()
    (root / "many").mkdir(parents=True)
    build_many_variables(root / "many")
    for name, (case, minimum, saves) in CASES.items():
        tmp = root / name
        tmp.mkdir(parents=True)
        prefix, x, values, names = build_original(
            tmp, input_shape=_valid_input(case, minimum), extra_saves=saves, **case
        )
        np.save(tmp / "x.npy", x)
        np.savez(tmp / "tf_values.npz", **values)
        (tmp / "built.json").write_text(json.dumps({"prefix": prefix.name, "names": names}))


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    if importlib.util.find_spec("tensorflow") is None and not os.environ.get("CI"):
        pytest.skip("TensorFlow is the tf extra: pip install -e .[tf]")
    root = tmp_path_factory.mktemp("tf_originals")
    done = subprocess.run(
        [sys.executable, __file__, str(root)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]

    def case(name):
        tmp = root / name
        built = json.loads((tmp / "built.json").read_text())
        values = dict(np.load(tmp / "tf_values.npz"))
        return tmp, tmp / built["prefix"], np.load(tmp / "x.npy"), values, built["names"]

    return case


def test_reader_reads_every_variable(originals):
    from synful.tf_import import sstable

    tmp = originals("multi_task")[0].parent / "many"
    checkpoint = TFCheckpoint(tmp / "many.index")
    expected = {k.replace("|", "/"): v for k, v in np.load(tmp / "values.npz").items()}
    assert checkpoint.names() == sorted(expected)
    for name, value in expected.items():
        got = checkpoint.read(name)
        assert (
            got.dtype == value.dtype and got.shape == value.shape and np.array_equal(got, value)
        ), name
    data = checkpoint.index_path.read_bytes()
    index = data[-sstable.FOOTER_SIZE :]
    _, _, pos = sstable._handle(index, 0)
    offset, size, _ = sstable._handle(index, pos)
    assert (
        len(list(sstable._entries(sstable._block(data, offset, size)))) > 1
    )  # several data blocks


@pytest.fixture(scope="module")
def multi_task(originals):
    return originals("multi_task")


@pytest.fixture(scope="module")
def mask_only(originals):
    tmp = originals("mask_only")[0]
    (tmp / "p_setup52_config.json").write_text(json.dumps({"setup": "p_setup52", "iteration": 4}))
    return originals("mask_only")


def test_multi_task_dh_unet_matches_tensorflow(multi_task, tmp_path, capsys):
    tmp, prefix, x, tf_values, names = multi_task
    out = tmp_path / "imported.pt"
    assert import_tf(prefix, tmp, out) == 0
    model, ours = synful_outputs(out, x)
    setup = load_checkpoint(out).setup
    assert setup["network_type"] == "dh_unet" and setup["mask_loss"] == "mse"
    assert model.heads == ("post_indicator", "partner_vectors")
    assert setup["fmap_num"] == 3 and setup["fmap_inc_factor"] == 2
    assert setup["downsample_factors"] == MULTI_TASK["factors"]
    diffs = compare(tf_values, ours, "mse")
    print("multi-task dh_unet (MSE): max abs differences", diffs)
    assert diffs["probability"] <= PROBABILITY_TOLERANCE
    assert diffs["linear"] <= PROBABILITY_TOLERANCE
    assert diffs["vectors_nm"] <= VECTOR_TOLERANCE_NM
    assert diffs["vector_scale_nm"] > 1  # the comparison is not between near-zero maps


def test_mask_only_vanilla_matches_tensorflow_and_predicts(mask_only, tmp_path, capsys):
    tmp, prefix, x, tf_values, names = mask_only
    assert "partner_vector_0/kernel" in names  # built by the original, untrained, dropped here
    out = tmp_path / "p52.pt"
    assert import_tf(str(prefix) + ".index", tmp, out) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["iteration"] == 4 == int(prefix.name.rsplit("_", 1)[1])
    setup = payload["setup"]
    assert setup["network_type"] == "vanilla" and setup["mask_loss"] == "ce"
    assert setup["m_loss_scale"] == 1.0 and setup["d_loss_scale"] == 0.0
    assert setup["description"].startswith("p_setup52: imported")
    model, ours = synful_outputs(out, x)
    assert model.heads == ("post_indicator",)
    diffs = compare(tf_values, ours, "ce")
    print("mask-only vanilla (CE): max abs differences", diffs)
    assert diffs["probability"] <= PROBABILITY_TOLERANCE
    assert diffs["linear"] <= PROBABILITY_TOLERANCE
    assert np.ptp(ours["probability"]) > 0.05  # not a constant map

    # synful predict takes the imported checkpoint as it is: float32 prediction of a sample,
    # compared with the network's output on one input window whose output is grid-aligned with
    # the prediction's blocks (the network is translation-equivariant on that grid)
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, size=(44, 120, 120)).astype(np.uint8)
    sample = tmp_path / "sample.zarr"
    write_volume(zarr.open_group(str(sample), mode="w"), "raw", raw, (40, 4, 4), (0, 0, 0))
    pred = tmp_path / "pred.zarr"
    assert (
        main(
            [
                "predict",
                str(out),
                str(sample),
                str(pred),
                "--dtype",
                "float32",
                "--workers",
                "1",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    stored = np.asarray(read(open_array(pred, "post_indicator")))
    shape = tuple(int(s) for s in setup["input_shape"])
    context = model.context(shape)
    grid = model.output_grid
    begin = [
        -(-c // g) * g for c, g in zip(context, grid)
    ]  # first grid-aligned output voxel >= context
    window = raw[tuple(slice(b - c, b - c + s) for b, c, s in zip(begin, context, shape))]
    with torch.no_grad():
        expected = model.mask_probability(
            model(torch.from_numpy(normalize_raw(window))[None, None])["post_indicator"]
        )
    expected = expected[0, 0].numpy()
    got = stored[tuple(slice(b, b + e) for b, e in zip(begin, expected.shape))]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= PROBABILITY_TOLERANCE


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "missing variable decoder_0_layer_1/unet_layer_1_right_1/bias"),
        ("extra", "unmapped variable extra_layer/kernel"),
        ("shape", "variable unet_layer_2_left_1/bias has shape [2, 2], the network needs [16]"),
    ],
)
def test_broken_checkpoints_are_one_line_errors(mask_only, tmp_path, capsys, kind, message):
    tmp, prefix, *_ = mask_only
    out = tmp_path / "out.pt"
    capsys.readouterr()
    assert import_tf(tmp / kind / prefix.name, tmp, out) == 1
    err = capsys.readouterr().err
    assert err.startswith("synful: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_config_that_does_not_fit_the_checkpoint(mask_only, tmp_path, capsys):
    tmp, prefix, *_ = mask_only
    setup_dir = tmp_path / "setup"
    setup_dir.mkdir()
    config = json.loads((tmp / "train_net_config.json").read_text())
    config["output_shape"][1] += 1
    (setup_dir / "train_net_config.json").write_text(json.dumps(config))
    out = tmp_path / "out.pt"
    capsys.readouterr()
    assert import_tf(prefix, setup_dir, out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train_net_config.json: output_shape" in err, err
    assert not out.exists()


def test_corrupt_data_is_an_error(mask_only, tmp_path, capsys):
    tmp, prefix, *_ = mask_only
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in tmp.glob(prefix.name + ".*"):
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "train_net_config.json").write_text((tmp / "train_net_config.json").read_text())
    data = next(copy.glob("*.data-00000-of-00001"))
    entry = TFCheckpoint(copy / prefix.name).entries["unet_layer_1_left_0/kernel"]
    raw = bytearray(data.read_bytes())
    raw[entry.offset + entry.size // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    capsys.readouterr()
    assert import_tf(copy / prefix.name, copy, tmp_path / "out.pt") == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.pt").exists()


def _original_forward(model, x):
    """The imported network run with the original's cropping (funlib unet.py: the skip is
    centre-cropped to the upsampled map, nothing else is cropped), from synful's modules."""
    with torch.no_grad():
        features = original_unet_features(model.unet, torch.from_numpy(x)[None, None])
        vectors = model.vector_head(features[0])[0].numpy() / model.d_scale
        indicator = model.mask_head(features[-1])[0, 0]
    return {
        "pred_syn_indicator": indicator.numpy(),
        "probability": model.mask_probability(indicator).numpy(),
        "pred_partner_vectors": vectors,
    }


@pytest.fixture(scope="module")
def published_factors(originals):
    tmp, prefix, x, tf_values, _ = originals("published_factors")
    out = tmp / "imported.pt"
    assert import_tf(prefix, tmp, out) == 0
    return out, x, tf_values


def test_published_downsampling_weights_are_exact(published_factors):
    """The weights are mapped exactly for the published downsampling: run with the original's
    cropping, the imported network reproduces TensorFlow."""
    out, x, tf_values = published_factors
    ours = _original_forward(load_checkpoint(out).model, x)
    assert ours["pred_syn_indicator"].shape == tf_values["pred_syn_indicator"].shape
    diffs = compare(tf_values, ours, "ce")
    print("published downsampling, original cropping: max abs differences", diffs)
    assert diffs["probability"] <= PROBABILITY_TOLERANCE
    assert diffs["vectors_nm"] <= VECTOR_TOLERANCE_NM
    assert diffs["vector_scale_nm"] > 1


def test_published_downsampling_matches_tensorflow(published_factors):
    """With the published downsampling (factors of 3 repeating) the imported network, with the
    skip connections aligned as in the original (``skip_alignment: geometric``, what an import
    sets), reproduces TensorFlow; synful's earlier ``centre_crop`` alignment does not."""
    out, x, tf_values = published_factors
    assert load_checkpoint(out).setup["skip_alignment"] == "geometric"
    model, ours = synful_outputs(out, x)
    assert model.skip_alignment == "geometric"
    diffs = compare(tf_values, ours, "ce")
    print("published downsampling, synful's forward: max abs differences", diffs)
    assert diffs["probability"] <= PROBABILITY_TOLERANCE
    assert diffs["linear"] <= PROBABILITY_TOLERANCE
    assert diffs["vectors_nm"] <= VECTOR_TOLERANCE_NM
    assert diffs["vector_scale_nm"] > 1

    legacy = build_model({**load_checkpoint(out).setup, "skip_alignment": "centre_crop"}).eval()
    legacy.load_state_dict(model.state_dict())
    with torch.no_grad():
        output = legacy(torch.from_numpy(x)[None, None])
    shifted = {
        "pred_syn_indicator": output["post_indicator"][0, 0].numpy(),
        "probability": legacy.mask_probability(output["post_indicator"][0, 0]).numpy(),
        "pred_partner_vectors": output["partner_vectors"][0].numpy(),
    }
    legacy_diffs = compare(tf_values, shifted, "ce")
    print("published downsampling, centre_crop alignment: max abs differences", legacy_diffs)
    assert legacy_diffs["vectors_nm"] > 100 * VECTOR_TOLERANCE_NM


if __name__ == "__main__":  # the child process of the ``originals`` fixture
    build_all(Path(sys.argv[1]))
