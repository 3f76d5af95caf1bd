"""The one-line summary of a synapse table: in memory and streamed from the written file."""

import numpy as np
import pandas as pd

import synful.extract.summary as summary_module
from synful.extract.summary import summarize, summarize_file
from synful.io.synapse_table import write_synapses


def table(n, seed=0):
    rng = np.random.default_rng(seed)
    positions = {f"{s}_{a}": rng.uniform(0, 1000, n) for s in ("pre", "post") for a in "zyx"}
    return pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.uint64),
            **positions,
            "score": rng.gamma(2.0, 3.0, n),
            "pre_seg_id": rng.integers(1, 20, n).astype(np.uint64),
            "post_seg_id": rng.integers(1, 20, n).astype(np.uint64),
        }
    )


def test_file_summary_equals_the_in_memory_one(tmp_path):
    for suffix in (".parquet", ".csv"):
        path = tmp_path / f"t{suffix}"
        write_synapses(table(5000), path)
        assert summarize_file(path) == summarize(table(5000))
    write_synapses(table(0), tmp_path / "empty.parquet")
    assert summarize_file(tmp_path / "empty.parquet") == "0 synapses"


def test_large_tables_are_sampled_not_held(tmp_path, monkeypatch):
    monkeypatch.setattr(summary_module, "SAMPLED_SCORES", 1000)
    monkeypatch.setattr(summary_module, "COUNTED_PAIRS_ROWS", 10_000)
    data = table(200_000, seed=3)
    write_synapses(data, tmp_path / "t.parquet")
    text = summarize_file(tmp_path / "t.parquet")
    assert text.startswith("200000 synapses; score min/25%/50%/75%/max ")
    assert "segment pairs" not in text  # not counted for a table this large
    values = [float(v) for v in text.split("max ")[1].split("/")]
    exact = np.quantile(data["score"], [0, 0.25, 0.5, 0.75, 1])
    assert values[0] == float(f"{exact[0]:.4g}") and values[4] == float(f"{exact[4]:.4g}")
    assert np.allclose(values[1:4], exact[1:4], rtol=0.1)
