"""Write the sector sample data of the repository's ``data/<sector>/`` folders.

Run from the repository root::

    python -m crmkit.datasets.write_sectors data/

Each folder holds :func:`crmkit.datasets.make_sector`'s tables as Parquet files
(Parquet keeps the types of the sectors' extra columns: renewal dates, flags), the
input of ``pipelines/<sector>.toml``. A test checks that the files equal what the
generator makes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crmkit.datasets._sectors import SECTORS, make_sector

__all__ = ["SECTOR_SAMPLE", "main", "write_sectors"]

SECTOR_SAMPLE = {"n_customers": 400, "seed": 0, "as_of": "2025-12-31", "years": 3}
"""The arguments of :func:`make_sector` that make ``data/<sector>/``."""


def write_sectors(root: str | Path, sectors=SECTORS) -> list[Path]:
    """Write ``<root>/<sector>/<table>.parquet`` for each sector; returns the files."""
    from crmkit.pipeline._shards import write_frame

    written = []
    for sector in sectors:
        folder = Path(root) / sector
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in make_sector(sector, **SECTOR_SAMPLE).items():
            written.append(write_frame(frame, folder / f"{name}.parquet"))
    return written


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m crmkit.datasets.write_sectors DIR [SECTOR ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("sectors", nargs="*", default=list(SECTORS))
    args = parser.parse_args(argv)
    for path in write_sectors(args.root, args.sectors):
        print(path)


if __name__ == "__main__":
    main()
