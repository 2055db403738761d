"""SQL over a run folder or a sweep folder, read-only, with DuckDB.

A **run folder** (``manifest.json``) gets one view per table: ``metrics``,
``citizens``, ``records``, ``ties`` and ``standing``. A **sweep folder**
(``sweep.json``) gets ``metrics`` (every ``metrics/cell=K/replicate=R.parquet``,
one row per run and scoring step), ``runs`` (every ``runs/cell=K/replicate=R.parquet``,
one row per run) and ``summary`` (``summary.parquet``, one row per cell), and
``indices`` where a sensitivity analysis wrote ``indices.parquet``. The
``cell`` column comes from the ``cell=K`` folder names (hive partitioning),
so it is there even for a file that lacks it. Swept parameters are columns
named by their dotted path, which SQL must quote: ``select "coupling.kappa",
blacklisted_mean from summary``.

**Read-only.** Each view scans its Parquet files through a pyarrow dataset
registered with an in-memory DuckDB database. After the views exist, DuckDB's
``enable_external_access`` is switched off and the configuration locked, so
the SQL can read the views but cannot open, write or attach any file
(``COPY citizens TO '...'`` fails with a permission error and writes nothing),
and cannot switch access back on. Views over DuckDB's own ``read_parquet``
would not survive that switch: DuckDB re-opens their files at every query,
and ``allowed_directories`` would also let ``COPY ... TO`` write into the
folder, which is why the views go through pyarrow.

Where files of different cells disagree on a column's type (a parameter
swept over ``0`` and ``0.5`` is int64 in one file and double in another),
the views use the common promoted type; DuckDB's own reader would silently
cast every file to the first file's type (``0.5`` read back as ``0``).

DuckDB is imported inside the functions, so ``import socialcredit`` stays
light.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import QueryError, RunFolderError
from .runfolder import MANIFEST, TABLES

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

SWEEP_MANIFEST = "sweep.json"
SWEEP_PARTS = ("metrics", "runs")
_PART_FILE = re.compile(r"^cell=(\d+)$")


def folder_kind(path: str | Path) -> str:
    """``"run"`` for a run folder (``manifest.json``), ``"sweep"`` for a sweep folder (``sweep.json``).

    Raises
    ------
    RunFolderError
        The path is not a folder, or holds neither file.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(
            f"{path} is not a folder; give a run folder (from `socialcredit run`) or a sweep folder "
            f"(from `socialcredit sweep`)"
        )
    if (path / MANIFEST).is_file():
        return "run"
    if (path / SWEEP_MANIFEST).is_file():
        return "sweep"
    raise RunFolderError(
        f"{path} is neither a complete run folder ({MANIFEST}) nor a sweep folder ({SWEEP_MANIFEST}); "
        f"rerun the scenario or the sweep, or point at the folder that holds one of these files"
    )


def part_files(folder: str | Path, part: str) -> list[Path]:
    """The ``PART/cell=K/replicate=R.parquet`` files of a sweep folder, by cell then replicate."""
    base = Path(folder) / part
    found = []
    for cell_dir in base.glob("cell=*"):
        m = _PART_FILE.match(cell_dir.name)
        if not m or not cell_dir.is_dir():
            continue
        for f in cell_dir.glob("replicate=*.parquet"):
            rep = f.stem.partition("=")[2]
            if rep.isdigit():
                found.append((int(m.group(1)), int(rep), f))
    return [f for _, _, f in sorted(found)]


def _dataset(files: list[Path], base: Path | None = None):
    """A pyarrow dataset over ``files`` with one promoted schema (and ``cell`` from folder names)."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    if base is None:
        return ds.dataset([str(f) for f in files], format="parquet", schema=schema)
    # cell comes from the folder name (first column, or where the files have it; same value)
    cell = pa.field("cell", pa.int64())
    fields = [cell if f.name == "cell" else f for f in schema]
    schema = pa.schema(fields if "cell" in schema.names else [cell, *fields], metadata=schema.metadata)
    partitioning = ds.partitioning(pa.schema([("cell", pa.int64())]), flavor="hive")
    return ds.dataset([str(f) for f in files], format="parquet", schema=schema,
                      partitioning=partitioning, partition_base_dir=str(base))


def views(path: str | Path) -> dict[str, Any]:
    """The views :func:`connect` creates: name -> pyarrow dataset."""
    import pyarrow.dataset as ds

    path = Path(path)
    kind = folder_kind(path)
    out: dict[str, Any] = {}
    if kind == "run":
        for name in TABLES:
            f = path / f"{name}.parquet"
            if not f.is_file():
                raise RunFolderError(f"{path} lacks {f.name}; the run folder is damaged, rerun the scenario")
            out[name] = ds.dataset(str(f), format="parquet")
        return out
    for part in SWEEP_PARTS:
        files = part_files(path, part)
        if files:
            out[part] = _dataset(files, path / part)
    for name in ("summary", "indices"):
        f = path / f"{name}.parquet"
        if f.is_file():
            out[name] = ds.dataset(str(f), format="parquet")
    return out


def connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose only tables are read-only views of a run or sweep folder.

    Parameters
    ----------
    path : str or Path
        A run folder (``manifest.json``) or a sweep folder (``sweep.json``).

    Returns
    -------
    duckdb.DuckDBPyConnection
        Views ``metrics``, ``citizens``, ``records``, ``ties``, ``standing`` (run folder) or
        ``metrics``, ``runs``, ``summary`` and ``indices`` where present (sweep folder). File
        access is switched off and the configuration locked: the connection can create
        in-memory tables but can neither read nor write any file.

    Raises
    ------
    RunFolderError
        The path is neither kind of folder.

    Examples
    --------
    >>> import socialcredit as sc, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "tiny")
    >>> _ = sc.run(sc.load_scenario("scenarios/reference.toml", ["population.size=50"]), out=out)
    >>> con = connect(out)
    >>> con.execute("select count(*) from citizens").fetchone()[0]
    50
    """
    return _connect(path)[0]


def _connect(path: str | Path) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    import duckdb

    tables = views(path)
    con = duckdb.connect(":memory:")
    for name, dataset in tables.items():
        con.register(name, dataset)
    # after this, no file can be opened, read or written, and nothing can switch it back on
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con, sorted(tables)


def query(path: str | Path, sql: str) -> pd.DataFrame:
    """Run SQL over a run folder or sweep folder and return the result as a pandas DataFrame.

    Parameters
    ----------
    path : str or Path
        A run folder or a sweep folder (see :func:`connect` for the views of each).
    sql : str
        DuckDB SQL. Several statements separated by ``;`` are allowed; the last one's result is
        returned. Nothing can be written to disk.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    RunFolderError
        The path is neither kind of folder.
    QueryError
        The SQL failed (syntax, unknown view or column, an attempt to read or write a file).

    Examples
    --------
    >>> import socialcredit as sc, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "tiny")
    >>> _ = sc.run(sc.load_scenario("scenarios/reference.toml", ["population.size=50"]), out=out)
    >>> query(out, "select count(*) as n from citizens")["n"].item()
    50
    """
    import duckdb

    con, names = _connect(path)
    try:
        result = con.execute(sql)
        if result.description is None:  # a statement without rows, e.g. CREATE TABLE
            return _empty_frame()
        return result.df()
    except duckdb.PermissionException as exc:
        raise QueryError(
            f"{_first_line(exc)}. Queries are read-only and see only the folder's views "
            f"({', '.join(names)}); to keep a result, save the returned DataFrame yourself"
        ) from None
    except duckdb.CatalogException as exc:
        raise QueryError(f"{_first_line(exc)}. Views in {path}: {', '.join(names)}") from None
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip()) from None
    finally:
        con.close()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0].rstrip(".!")


def _empty_frame():
    import pandas as pd

    return pd.DataFrame()


def format_table(df: pd.DataFrame, max_rows: int = 50, float_digits: int = 6) -> str:
    """A query result as aligned plain text: the first ``max_rows`` rows and a count of the rest.

    Examples
    --------
    >>> import pandas as pd
    >>> print(format_table(pd.DataFrame({"cell": [0, 1, 2], "share": [0.5, 0.25, 1/3]}), max_rows=2))
     cell  share
        0    0.5
        1   0.25
    (3 rows, first 2 shown)
    """
    n = len(df)
    if df.shape[1] == 0:
        return "(no columns)"
    shown = df.head(max_rows)
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.{float_digits}g}")
    if n == 0:
        return f"{text}\n(0 rows)"
    if n > max_rows:
        return f"{text}\n({n:,} rows, first {max_rows:,} shown)"
    return f"{text}\n({n:,} row{'s' if n != 1 else ''})"


def rich_table(df: pd.DataFrame, max_rows: int = 50, title: str | None = None, float_digits: int = 6):
    """A query result as a :class:`rich.table.Table` for the terminal (numbers right-aligned)."""
    import pandas as pd
    from rich.table import Table

    n = len(df)
    caption = f"{n:,} rows, first {max_rows:,} shown" if n > max_rows else f"{n:,} row{'s' if n != 1 else ''}"
    table = Table(title=title, caption=caption, show_header=True)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    for col, is_num in zip(df.columns, numeric):
        table.add_column(str(col), justify="right" if is_num else "left")
    for row in df.head(max_rows).itertuples(index=False):
        table.add_row(*(_cell(v, float_digits, pd.isna) for v in row))
    return table


def _cell(value: Any, digits: int, isna) -> str:
    if isinstance(value, float):
        return "NaN" if value != value else f"{value:.{digits}g}"
    if value is None or (not isinstance(value, (list, tuple, dict)) and not hasattr(value, "__len__") and isna(value)):
        return "NULL"
    return str(value)
