"""Segments and exports: declarative customer segments over a run's customer table,
their sizes and overlaps, and safe, stamped CSV/XLSX/Parquet exports."""

from crmkit.segments._export import (
    ExportResult,
    config_fingerprint,
    export_segment,
    export_stamp,
    is_stale_export,
    latest_run_date,
    neutralise,
    pseudonymise_ids,
    unneutralise,
)
from crmkit.segments._expr import CompiledSegment, compile_segment
from crmkit.segments._run import SegmentsRun, export_command, load_run_tables, run_segments
from crmkit.segments._table import (
    Segment,
    SegmentsConfig,
    customer_table,
    segment_members,
    segment_membership,
    segment_overlaps,
    segment_sizes,
)

__all__ = sorted([
    "CompiledSegment",
    "ExportResult",
    "Segment",
    "SegmentsConfig",
    "SegmentsRun",
    "compile_segment",
    "config_fingerprint",
    "customer_table",
    "export_command",
    "export_segment",
    "export_stamp",
    "is_stale_export",
    "latest_run_date",
    "load_run_tables",
    "neutralise",
    "pseudonymise_ids",
    "run_segments",
    "segment_members",
    "segment_membership",
    "segment_overlaps",
    "segment_sizes",
    "unneutralise",
])
