"""The run folder's Arrow columns are the ones pyarrow's own conversion builds, without importing pandas."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from socialcredit.columns import categorical, column, strings, table

DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64, np.float32, np.float64, np.bool_)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 1000])
def test_a_column_is_what_pa_array_builds(dtype, size):
    rng = np.random.default_rng(size)
    values = (rng.integers(-50, 50, size) if np.dtype(dtype).kind in "ib" else rng.integers(0, 99, size)).astype(dtype)
    got = column(values)
    expected = pa.array(values)
    assert got.type == expected.type
    assert got.equals(expected)
    assert got.null_count == 0


@pytest.mark.parametrize("size", [0, 5, 64, 1001])
def test_nulls_are_marked_as_pa_array_marks_them(size):
    values = np.random.default_rng(3).integers(-3, 40, size).astype(np.int32)
    got, expected = column(values, null=values < 0), pa.array(values, mask=values < 0)
    assert got.equals(expected)
    assert got.null_count == expected.null_count == int((values < 0).sum())
    assert got.to_pylist() == [None if v < 0 else int(v) for v in values]


def test_strided_and_non_numeric_inputs():
    values = np.arange(20, dtype=np.int64)[::3]  # not contiguous: copied first
    assert column(values).equals(pa.array(values))
    swapped = np.arange(5, dtype=">i4")
    assert column(swapped).equals(pa.array(np.arange(5, dtype=np.int32)))
    with pytest.raises(TypeError, match="1-d numeric or boolean"):
        column(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="1-d numeric or boolean"):
        column(np.array(["a", "b"]))


def test_strings_and_categoricals():
    names = ["AAA", "", "Überwachung", "信用", "D"]
    assert strings(names).equals(pa.array(names, pa.string()))
    assert strings([]).equals(pa.array([], pa.string()))
    codes = np.array([4, 0, 2, 2, 3, 1], dtype=np.int8)
    expected = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(names, pa.string()))
    got = categorical(codes, names)
    assert got.type == expected.type
    assert got.equals(expected)


def test_a_table_writes_the_same_parquet_bytes(tmp_path):
    rng = np.random.default_rng(9)
    cols = {"id": np.arange(300, dtype=np.int32), "score": rng.random(300), "black": rng.random(300) < 0.2,
            "cut": rng.integers(-1, 9, 300).astype(np.int32)}
    ours = table({**cols, "cut": column(cols["cut"], null=cols["cut"] < 0), "grade": categorical(cols["cut"] % 3, ["A", "B", "C"])})
    theirs = pa.table({**cols, "cut": pa.array(cols["cut"], mask=cols["cut"] < 0),
                       "grade": pa.DictionaryArray.from_arrays(pa.array((cols["cut"] % 3).astype(np.int32)),
                                                               pa.array(["A", "B", "C"]))})
    for name, t in (("ours", ours), ("theirs", theirs)):
        pq.write_table(t, tmp_path / f"{name}.parquet", compression="zstd", use_dictionary=["grade"])
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "theirs.parquet").read_bytes()


WRITE_CHILD = """
import sys
import socialcredit as sc
sc.run(sc.load_scenario(sys.argv[1], ["population.size=800", "days=21"]), out=sys.argv[2])
print("pandas" in sys.modules)
"""


def test_writing_a_run_folder_does_not_import_pandas(scenarios_dir, tmp_path):
    """pandas costs ~0.4 s to import; a run that only writes its folder never needs it."""
    done = subprocess.run([sys.executable, "-c", WRITE_CHILD, str(scenarios_dir / "rongcheng.toml"), str(tmp_path / "run")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert pq.read_table(tmp_path / "run" / "metrics.parquet").num_rows == 3
