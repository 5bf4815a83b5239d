"""Loaders for the public reference data kept beside the project (``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from crmkit._frames import Output, to_output

__all__ = [
    "load_cdnow",
    "load_cdnow_summary",
    "load_charity",
    "load_donations",
    "load_rossi",
    "load_telco",
    "reference_data_dir",
]

_ENV = "CRMKIT_REFERENCE_DATA"


def reference_data_dir(required: bool = True) -> Path | None:
    """Return the folder holding the reference data sets.

    Looks at ``$CRMKIT_REFERENCE_DATA`` first, then for ``shared/data`` beside the
    current directory or any of its parents, then beside the installed package.

    Parameters
    ----------
    required : bool
        Raise ``FileNotFoundError`` (saying where it looked) when nothing is found;
        otherwise return None.

    Examples
    --------
    >>> path = reference_data_dir(required=False)
    >>> path is None or (path / "cdnow").is_dir()
    True
    """
    candidates = []
    if os.environ.get(_ENV):
        candidates.append(Path(os.environ[_ENV]))
    for base in [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]]:
        candidates.append(base / ".." / "shared" / "data")
        candidates.append(base / "shared" / "data")
    for cand in candidates:
        if (cand / "cdnow").is_dir():
            return cand.resolve()
    if required:
        raise FileNotFoundError(
            f"Reference data not found: set {_ENV} to the folder with cdnow/, rossi/, telco/ "
            "or run from a checkout with ../shared/data beside it."
        )
    return None


def _path(*parts: str) -> Path:
    path = reference_data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"Reference data file {path} is missing.")
    return path


def load_cdnow(kind: str = "sample", output: Output = "polars"):
    """CDNOW transactions as a canonical transactions table.

    Parameters
    ----------
    kind : {"sample", "master"}
        ``"sample"``: the 1/10 sample of Fader, Hardie & Lee (2005), 2,357
        customers, ids are the sample ids; ``"master"``: all 23,570 customers.

    Returns
    -------
    DataFrame
        ``customer_id`` (str), ``timestamp`` (datetime), ``amount`` (dollars),
        ``quantity`` (CDs).

    Examples
    --------
    >>> tx = load_cdnow("sample")  # doctest: +SKIP
    >>> tx.height  # doctest: +SKIP
    6919
    """
    if kind == "sample":
        path, names, id_col = _path("cdnow", "CDNOW_sample.txt"), \
            ["master_id", "customer_id", "date", "quantity", "amount"], "customer_id"
        skip = 0
    elif kind == "master":
        path, names, id_col = _path("cdnow", "CDNOW_master.txt"), \
            ["customer_id", "date", "quantity", "amount"], "customer_id"
        skip = 1
    else:
        raise ValueError(f"The 'kind' parameter of load_cdnow must be one of 'sample', 'master'. "
                         f"Got {kind!r} instead.")
    lines = path.read_text().splitlines()[skip:]
    rows = [ln.split() for ln in lines if ln.strip()]
    frame = pl.DataFrame(rows, schema=names, orient="row")
    out = frame.select(
        pl.col(id_col).cast(pl.Int64).cast(pl.String).alias("customer_id"),
        pl.col("date").str.strptime(pl.Date, "%Y%m%d").cast(pl.Datetime("us")).alias("timestamp"),
        pl.col("amount").cast(pl.Float64),
        pl.col("quantity").cast(pl.Int64),
    )
    return to_output(out, output)


def load_cdnow_summary(with_spend: bool = False, output: Output = "polars"):
    """The published CDNOW-sample RFM summary (weeks, calibration to 1997-09-30).

    Columns ``customer_id``, ``frequency``, ``recency_weeks``, ``T_weeks`` and, with
    ``with_spend=True``, ``monetary_value`` (zbar, mean repeat spend).
    """
    if with_spend:
        raw = pl.read_csv(_path("cdnow", "cdnow_customers_summary_with_transactions.csv"))
        out = raw.select(pl.col("ID").cast(pl.String).alias("customer_id"),
                         pl.col("x").alias("frequency"), pl.col("t_x").alias("recency_weeks"),
                         pl.col("T").alias("T_weeks"), pl.col("zbar").alias("monetary_value"))
    else:
        raw = pl.read_csv(_path("cdnow", "cdnow_customers_summary.csv"))
        out = raw.select(pl.col("ID").cast(pl.String).alias("customer_id"), "frequency",
                         pl.col("recency").alias("recency_weeks"), pl.col("T").alias("T_weeks"))
    return to_output(out, output)


def load_donations(output: Output = "polars"):
    """Fader, Hardie & Shang (2010) donation patterns for BG/BB: frequency, recency,
    periods, weights (donors with that pattern)."""
    return to_output(pl.read_csv(_path("cdnow", "donations.csv")), output)


def load_rossi(output: Output = "polars"):
    """Rossi et al. recidivism data (432 rows): week, arrest, fin, age, race, wexp, mar, paro, prio."""
    return to_output(pl.read_csv(_path("rossi", "rossi.csv")), output)


def load_telco(output: Output = "polars"):
    """IBM Telco customer churn (7,043 rows). ``TotalCharges`` is parsed as float
    (11 blanks become null); ``Churn`` becomes a boolean ``churned``."""
    raw = pl.read_csv(_path("telco", "Telco-Customer-Churn.csv"), infer_schema_length=0)
    out = raw.with_columns(
        pl.col("tenure").cast(pl.Int64),
        pl.col("SeniorCitizen").cast(pl.Int64),
        pl.col("MonthlyCharges").cast(pl.Float64),
        pl.col("TotalCharges").str.strip_chars().cast(pl.Float64, strict=False),
        (pl.col("Churn") == "Yes").alias("churned"),
    )
    return to_output(out, output)


def load_charity(output: Output = "polars"):
    """Wooldridge's direct-mail charity response data (4,268 rows)."""
    raw = pl.read_csv(_path("charity", "wooldridge_charity.csv"))
    return to_output(raw.drop("rownames") if "rownames" in raw.columns else raw, output)
