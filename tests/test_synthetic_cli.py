"""`synful synthesize` end to end, and the preview."""

import h5py
import numpy as np
import pytest

from synful.cli import main
from synful.io.cremi import read_cremi
from synful.synthetic import synthesize_sample, write_preview

ARGS = ["--shape", "8", "120", "120", "--padding", "2", "24", "24"]


def test_cli_writes_padded_cremi_file(tmp_path):
    out = tmp_path / "new" / "dir" / "sample.hdf"
    preview = tmp_path / "png" / "preview.png"
    assert main(["synthesize", str(out), "--seed", "4", *ARGS, "--preview", str(preview)]) == 0
    with h5py.File(out, "r") as f:
        assert f["volumes/raw"].dtype == np.uint8 and f["volumes/raw"].shape == (12, 168, 168)
        assert "offset" not in f["volumes/raw"].attrs
        labels = f["volumes/labels/neuron_ids"]
        assert labels.dtype == np.uint64 and labels.shape == (8, 120, 120)
        assert list(labels.attrs["resolution"]) == [40, 4, 4]
        assert list(f["volumes/raw"].attrs["resolution"]) == [40, 4, 4]
        assert list(labels.attrs["offset"]) == [80, 96, 96]
        assert list(f["annotations"].attrs["offset"]) == [80, 96, 96]
        assert set(f["annotations"]) == {"ids", "types", "locations", "presynaptic_site"}
        assert f["annotations/presynaptic_site/partners"].dtype == np.uint64
    in_memory = synthesize_sample(seed=4, shape=(8, 120, 120), padding=(2, 24, 24))
    on_disk = read_cremi(out)
    assert np.array_equal(on_disk.raw.data, in_memory.raw.data)
    assert np.array_equal(on_disk.neuron_ids.data, in_memory.neuron_ids.data)
    assert np.array_equal(on_disk.annotations.locations, in_memory.annotations.locations)
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--shape", "0", "10", "10"], "--shape: must be >= 1"),
        (["--padding", "1", "-2", "1"], "--padding: must be >= 0"),
        (["--missing-sections", "2"], "--missing-sections: must lie in [0, 1]"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, extra, message):
    out = tmp_path / "s.hdf"
    assert main(["synthesize", str(out), *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("synful: error:") and message in err[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_unwritable_path(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert main(["synthesize", str(blocker / "s.hdf"), *ARGS]) == 1
    err = capsys.readouterr().err
    assert err.startswith("synful: error: ") and "not a directory" in err
    assert main(["synthesize", str(tmp_path), *ARGS]) == 1
    assert "is a directory" in capsys.readouterr().err


def test_preview_sections(tmp_path):
    sample = synthesize_sample(seed=1, shape=(8, 120, 120), padding=(2, 24, 24))
    write_preview(sample, tmp_path / "p.png", sections=[0, 7])
    assert (tmp_path / "p.png").stat().st_size > 1000
    from synful.errors import SynfulError

    with pytest.raises(SynfulError):
        write_preview(sample, tmp_path / "q.png", sections=[8])
    assert not (tmp_path / "q.png").exists()


def test_same_arrays_across_processes_and_thread_counts(tmp_path):
    import os
    import subprocess
    import sys

    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}.hdf"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "PYTHONHASHSEED": threads,
        }
        subprocess.run(
            [
                sys.executable,
                "-m",
                "synful",
                "--quiet",
                "synthesize",
                str(out),
                "--seed",
                "9",
                *ARGS,
            ],
            check=True,
            env=env,
        )
        outs.append(read_cremi(out))
    a, b = outs
    assert a.raw.data.tobytes() == b.raw.data.tobytes()
    assert a.neuron_ids.data.tobytes() == b.neuron_ids.data.tobytes()
    assert a.annotations.locations.tobytes() == b.annotations.locations.tobytes()
