"""The comparison's report rows: a model's cost, one run's result, one model's summary, typed.

``CostRow`` is what ``measure.py`` measures per model, ``ResultRow`` one finished run (``outputs.result_rows``),
``SummaryRow`` one model over its seeds (``stats.summarize``). Their fields ARE the report's columns: a field
made with :func:`column` is a column of ``results.csv`` / ``summary.csv``, in field order, with its meaning
(``doc``: the column tables of ``docs/compare.md`` are generated from it by :func:`update_doc`) and,
optionally, a :class:`Cell` per report table it shows in (``"summary"``: the report's and the terminal's
summary table; ``"runs"``: the report's table of runs). A row's cost is one :func:`nested` ``CostRow`` field
whose columns stand where the field stands. Fields made with :func:`hidden` travel with the row (curves,
weights) but are no column.

Adding a report column is one field and its formatter: a ``column(doc, cells={"summary": Cell(header,
text)})`` field here. The CSV headers, the report's tables and (after ``update_doc``) the docs follow.

Rows live here, not in ``records.py``: records are the versioned JSON that crosses processes (spec, result,
failure) and refuses a field it does not know, while rows are derived in the driver and carry presentation
(formatters, docs); keeping them apart also keeps formatting out of the worker's imports.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

_META = "yoloattn.column"  # the metadata key of every field this module makes


@dataclass(frozen=True)
class Cell:
    """How a field shows in one report table: its header and its text.

    ``header`` may name ``{params}`` (the params header with the dataset's class count) and ``{confidence}``
    (the interval's confidence, e.g. ``95%``), which ``report.py`` fills in; ``text`` gets the row that owns
    the field (a ``CostRow`` for a cost column) and returns the cell.
    """

    header: str
    text: Callable[[Any], str]


@dataclass(frozen=True)
class ColumnSpec:
    """What a row field is to the report (made by :func:`column`, :func:`hidden` or :func:`nested`)."""

    csv: bool  # a column of the CSV (else the field only travels with the row)
    doc: str | None  # its meaning in docs/compare.md; "" joins the previous column's line, None: undocumented
    cells: dict[str, Cell]  # report table name -> its cell there
    fmt: Callable[[Any], str] | None  # the CSV text, if not csv_text's
    nested: type | None = None  # a row type whose columns stand in for this field


def column(doc: str = "", *, cells: dict[str, Cell] | None = None, fmt: Callable[[Any], str] | None = None,
           **default) -> Any:
    """A field that is a CSV column: ``doc`` is its meaning in docs/compare.md (``""``: the same line as the
    column before), ``cells`` its cell per report table, ``fmt`` its CSV text (default :func:`csv_text`);
    ``default=`` / ``default_factory=`` as for ``dataclasses.field``."""
    return dataclasses.field(metadata={_META: ColumnSpec(True, doc, dict(cells or {}), fmt)}, **default)


def hidden(**default) -> Any:
    """A field that travels with the row but is no CSV column (curves, weights paths, box counts)."""
    return dataclasses.field(metadata={_META: ColumnSpec(False, None, {}, None)}, **default)


def nested(row_type: type, doc: str | None = None) -> Any:
    """A field holding a ``row_type`` row whose columns (and cells) stand where the field stands. ``doc``:
    one line for all of them in docs/compare.md (None: each column's own line)."""
    return dataclasses.field(metadata={_META: ColumnSpec(True, doc, {}, None, row_type)})


def csv_text(value) -> str:
    """A CSV cell: empty for None and NaN, floats to 6 significant digits, anything else as ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def column_spec(f: dataclasses.Field) -> ColumnSpec:
    """The report's view of a row field (a field made elsewhere: no column)."""
    return f.metadata.get(_META) or ColumnSpec(False, None, {}, None)


def _leaves(row_type: type, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dataclasses.Field]]:
    """(attribute path, field) of every non-nested field of ``row_type``, nested rows spliced in place."""
    for f in dataclasses.fields(row_type):
        spec = column_spec(f)
        if spec.nested is not None:
            yield from _leaves(spec.nested, (*path, f.name))
        else:
            yield (*path, f.name), f


def _get(row, path: tuple[str, ...]):
    for name in path:
        row = getattr(row, name)
    return row


def columns(row_type: type) -> tuple[str, ...]:
    """The CSV header of ``row_type``: its column fields in field order, nested rows' columns in place.

    Raises TypeError when ``row_type`` is not a dataclass.
    """
    return tuple(path[-1] for path, f in _leaves(row_type) if column_spec(f).csv)


def csv_values(row) -> list[str]:
    """``row``'s CSV cells, in the order of :func:`columns` of its type."""
    cells = []
    for path, f in _leaves(type(row)):
        spec = column_spec(f)
        if spec.csv:
            cells.append((spec.fmt or csv_text)(_get(row, path)))
    return cells


def table(rows: list, row_type: type, name: str, **header_fields: str) -> tuple[list[str], list[list[str]]]:
    """The report table ``name`` of ``rows``: one column per field with a cell for ``name``, in field order;
    ``header_fields`` fill the headers' ``{...}`` names. Raises KeyError for a header name not given."""
    cells = [(path[:-1], spec.cells[name]) for path, f in _leaves(row_type) if name in (spec := column_spec(f)).cells]
    header = [cell.header.format(**header_fields) for _, cell in cells]
    return header, [[cell.text(_get(row, owner)) for owner, cell in cells] for row in rows]


def columns_markdown(row_type: type) -> str:
    """The ``| column | meaning |`` table of ``row_type``'s CSV columns for docs/compare.md (no trailing newline):
    a column whose doc is ``""`` shares the line of the column before it."""
    groups: list[tuple[list[str], str]] = []

    def add(names: list[str], doc: str | None) -> None:
        if doc is None:
            return
        if doc == "" and groups:
            groups[-1][0].extend(names)
        else:
            groups.append((list(names), doc))

    for f in dataclasses.fields(row_type):
        spec = column_spec(f)
        if not spec.csv:
            continue
        if spec.nested is not None and spec.doc is None:
            for inner in dataclasses.fields(spec.nested):
                if column_spec(inner).csv:
                    add([inner.name], column_spec(inner).doc)
        elif spec.nested is not None:
            add(list(columns(spec.nested)), spec.doc)
        else:
            add([f.name], spec.doc)
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| {', '.join(f'`{n}`' for n in names)} | {doc} |" for names, doc in groups]
    return "\n".join(lines)


# --- the cells' texts --------------------------------------------------------------------------------------


def mean_std_text(mean: float, std: float | None) -> str:
    """``"0.123 ± 0.004"``; just the mean without a spread (one seed)."""
    return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"


def with_interval(value: float | None, low: float | None, high: float | None, spec: str = "+.3f") -> str:
    """``"+0.012 [-0.004, +0.027]"`` in ``spec``; just the value without an interval; empty without a value."""
    if value is None:
        return ""
    if low is None:
        return f"{value:{spec}}"
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


def _delta_ci(s: SummaryRow) -> str:
    """Δ mAP50-95 and its interval (empty for the baseline)."""
    return with_interval(s.delta_map50_95, s.delta_ci_low, s.delta_ci_high)


def _p_better(s: SummaryRow) -> str:
    """``"0.78 [0.33, 1.00]"`` (empty for the baseline)."""
    return with_interval(s.p_better, s.p_better_ci_low, s.p_better_ci_high, ".2f")


def _paired(s: SummaryRow) -> str:
    """The paired Δ, its interval only with 2+ shared seeds that differ (empty for the baseline)."""
    return with_interval(s.paired_delta, s.paired_ci_low, s.paired_ci_high)


def _verdict(s: SummaryRow) -> str:
    # a sequential decision is not Holm's test: its p would read as the evidence (docs/compare.md, Adaptive seeds)
    sequential = "(sequential," in s.verdict
    return s.verdict + (f", p_Holm {s.p_holm:.3f}" if s.p_holm is not None and not sequential else "")


def _text(name: str) -> Callable[[Any], str]:
    return lambda row: str(getattr(row, name))


def _fixed(name: str, digits: int) -> Callable[[Any], str]:
    return lambda row: f"{getattr(row, name):.{digits}f}"


# --- the rows ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostRow:
    """One model's cost (``measure.py``): measured once per architecture, batch 1 on the driver's CPU.

    Cached as a dict (``dataclasses.asdict``) under ``OUT/measure``; :meth:`from_dict` reads it back.
    """

    params: int = column("params of the fused model at the dataset's class count (the report's tables say "
                         "\"params (M, fused, N classes)\"); GFLOPs per image at `imgsz`",
                         cells={"summary": Cell("{params}", lambda c: f"{c.params / 1e6:.3f}")})
    gflops: float = column(cells={"summary": Cell("GFLOPs", _fixed("gflops", 3))})
    latency_p50_ms: float = column("batch-1 CPU latency with PyTorch: median and 90th percentile of the timed "
                                   "passes", cells={"summary": Cell("torch ms p50/p90", lambda c:
                                                                    f"{c.latency_p50_ms:.1f}/{c.latency_p90_ms:.1f}")})
    latency_p90_ms: float = column()
    latency_ort_p50_ms: float | None = column("the same with ONNX Runtime (empty when `--runtimes` leaves it out; "
                                              "every runtime's latency is in latency.csv)", cells={"summary": Cell(
        "ORT ms p50/p90", lambda c: "—" if c.latency_ort_p50_ms is None else
        f"{c.latency_ort_p50_ms:.1f}/{c.latency_ort_p90_ms:.1f}")})
    latency_ort_p90_ms: float | None = column()
    peak_mem_mb: float = column("peak MiB of one batch-1 PyTorch inference pass of the fused eval model on the CPU: "
                                "the activations on top of weights and input (`bench.peak_memory_mb`), not "
                                "training memory", cells={"summary": Cell("inference peak MiB",
                                                                          _fixed("peak_mem_mb", 1))})
    nc: int = hidden()  # the classes the params were counted with
    efficiency: float = hidden()  # achieved / matmul-peak GFLOP/s, PyTorch
    efficiency_ort: float | None = hidden()  # the same with ONNX Runtime
    matmul_peak_gflops_s: float = hidden()  # the driver's matmul peak, GFLOP/s
    threads: int = hidden()  # latency threads
    machine: str = hidden()  # the driver that measured (records.machine_description: CPU model and ISA)
    # every measured runtime (deploy.runtimes, torch included) -> {"p50_ms", "p90_ms", "efficiency"}; latency.csv
    latency: dict = hidden(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> CostRow | None:
        """The row of a cached dict; None when the dict has other keys than this version's fields (an older
        cache: measure it again)."""
        if set(data) != {f.name for f in dataclasses.fields(cls)}:
            return None
        return cls(**data)


@dataclass(frozen=True)
class ResultRow:
    """One finished run: its model's cost, its metrics (fractions in [0, 1]), where and with what it ran.

    A row of ``results.csv`` and of the report's table of runs.
    """

    model: str = column("e.g. `yolo11n-mlla-psa`, `MLLA`, `psa` (empty for the baseline)",
                        cells={"runs": Cell("model", _text("model"))})
    module: str = column()
    where: str = column()
    seed: int = column("training seed", cells={"runs": Cell("seed", _text("seed"))})
    cost: CostRow = nested(CostRow)
    map50: float = column("Ultralytics' final validation on the evaluation split",
                          cells={"runs": Cell("mAP50", _fixed("map50", 4))})
    map50_95: float = column(cells={"runs": Cell("mAP50-95", _fixed("map50_95", 4))})
    map50_95_small: float | None = column("COCO AP@[.50:.95] per COCO area range (below); empty where the split "
                                          "has no box of that size")
    map50_95_medium: float | None = column()
    map50_95_large: float | None = column()
    precision: float = column("Ultralytics' final validation, like `map50`",
                              cells={"runs": Cell("precision", _fixed("precision", 3))})
    recall: float = column(cells={"runs": Cell("recall", _fixed("recall", 3))})
    train_s: float = column("wall time of the training call (including its final validation), torch threads "
                            "it used", cells={"runs": Cell("train s", _fixed("train_s", 0))})
    threads: int = column()
    torch: str = column("the versions the run trained with (the full environment is in its `result.json`)")
    ultralytics: str = column()
    epochs: int = column("the run's settings")
    imgsz: int = column()
    transferred: int | None = column("with `--weights`: tensors that started from the checkpoint, the model's "
                                     "tensors, and the share of the checkpoint's tensors that found a home "
                                     "([finetune.md](finetune.md))")
    total_tensors: int | None = column()
    base_kept: float | None = column()
    host: str = column("the machine that trained the run (a Ray node's host name with `--executor ray`)")
    run_key: str = column("the run's key and folder")
    run_dir: str = column()
    curve: list[dict] = hidden(default_factory=list)  # Ultralytics' per-epoch results.csv
    val_curve: list[dict] = hidden(default_factory=list)  # {"epoch", "map50", "map50_95"} per validation
    objects_by_size: tuple[int, int, int] | None = hidden(default=None)  # evaluation-split boxes (small, medium, large)
    ap_per_class: dict | None = hidden(default=None)  # {class name: AP@[.50:.95]} (RunResult.ap_per_class)
    weights: str = hidden(default="")  # the run's final weights (on the node that trained it)


@dataclass(frozen=True)
class SummaryRow:
    """One model over its seeds (``stats.summarize``): means, sample stds, and its test against the baseline.

    A row of ``summary.csv`` and of the report's summary table. The Δ statistics are None for the baseline
    and where they are undefined (one seed, no spread; see ``stats.py``).
    """

    model: str = column("as in results.csv", cells={"summary": Cell("model", _text("model"))})
    module: str = column()
    where: str = column()
    seeds: int = column("runs used (finished and not diverged)")
    planned_seeds: int = column("runs planned (`--seeds`; with `--until-decided`, the batches the model trained)")
    cost: CostRow = nested(CostRow, "the model's cost, as in results.csv")
    map50_mean: float = column("mean and sample standard deviation over the seeds used",
                               cells={"summary": Cell("mAP50", lambda s: mean_std_text(s.map50_mean, s.map50_std))})
    map50_std: float | None = column()
    map50_95_mean: float = column(cells={"summary": Cell("mAP50-95", lambda s: mean_std_text(s.map50_95_mean,
                                                                                              s.map50_95_std))})
    map50_95_std: float | None = column()
    map50_95_small_mean: float | None = column()
    map50_95_small_std: float | None = column()
    map50_95_medium_mean: float | None = column()
    map50_95_medium_std: float | None = column()
    map50_95_large_mean: float | None = column()
    map50_95_large_std: float | None = column()
    delta_map50: float | None = column("difference of the means against the baseline", default=None)
    delta_map50_95: float | None = column(cells={"summary": Cell("Δ mAP50-95 [{confidence} CI]", _delta_ci)},
                                          default=None)
    delta_ci_low: float | None = column("percentile bootstrap interval of `delta_map50_95` (95 %)", default=None)
    delta_ci_high: float | None = column(default=None)
    p_map50_95: float | None = column("Welch's t-test of mAP50-95, two-sided", default=None)
    p_holm: float | None = column("the same, Holm-adjusted across the comparison's variants", default=None)
    effect_size: float | None = column("Hedges' g", default=None)
    min_detectable_delta: float | None = column("the smallest Δ mAP50-95 a t-test with these seeds and this spread "
                                                "detects (see below)", default=None)
    p_better: float | None = column("P(variant > baseline): the chance that a run of the variant beats a run of the "
                                    "baseline, ties ½ (Mann–Whitney U / (n·m), over the seeds used)",
                                    cells={"summary": Cell("P(better) [{confidence} CI]", _p_better)}, default=None)
    p_better_ci_low: float | None = column("percentile bootstrap interval of `p_better` (95 %)", default=None)
    p_better_ci_high: float | None = column(default=None)
    paired_delta: float | None = column("the paired difference: mean over the seeds both models finished of "
                                        "(variant − baseline) at the same seed, which shares the data order and "
                                        "augmentation", cells={"summary": Cell("paired Δ (same seed)", _paired)},
                                        default=None)
    paired_ci_low: float | None = column("its percentile bootstrap interval over those seeds (95 %)", default=None)
    paired_ci_high: float | None = column(default=None)
    paired_seeds: int | None = column("seeds in the paired difference", default=None)
    verdict: str = column("`baseline`, `better`, `worse`, `not shown (could detect Δ ≥ X)` or `n/a (...)`; with "
                          "`--until-decided` the sequential test's decision and the seeds it rests on: `better`, "
                          "`worse`, `no difference ≥ D` or `undecided (sequential, N seeds)`",
                          cells={"summary": Cell("verdict", _verdict)}, default="")
    transferred: int | None = column("as in results.csv", default=None)
    total_tensors: int | None = column(default=None)
    base_kept: float | None = column(default=None)
    train_s_mean: float | None = column("mean `train_s`", default=None)


def _p50_p90(row) -> str:
    return f"{row.p50_ms:.2f}/{row.p90_ms:.2f}"


def _ratio(row) -> str:
    return "" if row.ratio_to_baseline is None else f"{row.ratio_to_baseline:.2f}×"


@dataclass(frozen=True)
class LatencyRow:
    """One model on one runtime (``latency.csv`` and the report's "Latency per runtime" table), from its
    ``CostRow.latency``."""

    model: str = column("as in results.csv", cells={"latency": Cell("model", _text("model"))})
    runtime: str = column("`torch` (eager, fused) or the runtime the model was exported to through Ultralytics and "
                          "run in (docs/deploy.md)", cells={"latency": Cell("runtime", _text("runtime"))})
    p50_ms: float = column("batch-1 latency at `imgsz`, fp32: median and 90th percentile of the timed passes",
                           cells={"latency": Cell("ms p50/p90", _p50_p90)})
    p90_ms: float = column()
    ratio_to_baseline: float | None = column("`p50_ms` over the baseline's on the same runtime",
                                             cells={"latency": Cell("× baseline", _ratio)})
    threads: int = column("threads the runtime used, and the CPU (model, vector ISA, cores) that measured",
                          cells={"latency": Cell("threads", _text("threads"))})
    cpu: str = column()


def _opt(name: str, digits: int = 4) -> Callable[[Any], str]:
    return lambda row: "" if getattr(row, name) is None else f"{getattr(row, name):.{digits}f}"


@dataclass(frozen=True)
class Int8Row:
    """One finished run quantized post-training to INT8 for one runtime (``int8.csv``; ``deploy.int8``)."""

    model: str = column("as in results.csv")
    seed: int = column()
    runtime: str = column("the runtime of Ultralytics' INT8 export (`--int8`)")
    map50_95_fp32: float = column("mAP50-95 of the run's weights exported in fp32 and in INT8 to that runtime, both "
                                  "validated by Ultralytics on the evaluation split (batch 1, square letterbox)")
    map50_95_int8: float = column()
    delta_int8: float = column("`map50_95_int8 - map50_95_fp32`")
    retention: float | None = column("`map50_95_int8 / map50_95_fp32` (empty when the fp32 value is 0)")
    map50_fp32: float = column("the same for mAP50")
    map50_int8: float = column()
    latency_int8_p50_ms: float = column("batch-1 median latency of the INT8 and the fp32 artifact in the runtime")
    latency_fp32_p50_ms: float = column()
    calibration_images: int = column("training images that calibrated the quantization (the first N)")


def _int8_delta(row) -> str:
    if row.drop_delta is None:
        return ""
    if row.drop_ci_low is None:
        return f"{row.drop_delta:+.3f}"
    return f"{row.drop_delta:+.3f} [{row.drop_ci_low:+.3f}, {row.drop_ci_high:+.3f}]"


@dataclass(frozen=True)
class Int8SummaryRow:
    """One model on one INT8 runtime over its seeds (``int8_summary.csv`` and the report's INT8 table)."""

    model: str = column("as in summary.csv", cells={"int8": Cell("model", _text("model"))})
    runtime: str = column(cells={"int8": Cell("runtime", _text("runtime"))})
    seeds: int = column("runs quantized")
    map50_95_int8_mean: float = column("mean and sample std over the seeds of `map50_95_int8`",
                                       cells={"int8": Cell("INT8 mAP50-95", lambda r: mean_std_text(
                                           r.map50_95_int8_mean, r.map50_95_int8_std))})
    map50_95_int8_std: float | None = column()
    retention_mean: float | None = column("mean and std of the INT8 retention",
                                          cells={"int8": Cell("retention", lambda r: "" if r.retention_mean is None
                                                              else mean_std_text(r.retention_mean, r.retention_std))})
    retention_std: float | None = column()
    drop_mean: float = column("mean `delta_int8` (INT8 − fp32; negative: INT8 loses accuracy)",
                              cells={"int8": Cell("Δ INT8−fp32", lambda r: f"{r.drop_mean:+.3f}")})
    drop_delta: float | None = column("this model's `drop_mean` minus the baseline's, with its bootstrap interval: "
                                      "negative when the variant loses more under INT8 than the baseline",
                                      cells={"int8": Cell("vs baseline [{confidence} CI]", _int8_delta)},
                                      default=None)
    drop_ci_low: float | None = column(default=None)
    drop_ci_high: float | None = column(default=None)
    p_holm: float | None = column("Welch's t-test of `delta_int8` against the baseline's, Holm-adjusted across the "
                                  "variants", default=None)
    verdict: str = column("`baseline`, `loses more than the baseline`, `loses less than the baseline`, "
                          "`not shown (could detect Δ ≥ X)` or `n/a (...)`",
                          cells={"int8": Cell("verdict", _text("verdict"))}, default="")
    latency_int8_p50_ms: float | None = column("median over seeds of the INT8 and fp32 batch-1 latency, ms",
                                               cells={"int8": Cell("INT8 / fp32 ms", lambda r: "" if
                                                                   r.latency_int8_p50_ms is None else
                                                                   f"{r.latency_int8_p50_ms:.2f}/"
                                                                   f"{r.latency_fp32_p50_ms:.2f}")}, default=None)
    latency_fp32_p50_ms: float | None = column(default=None)


@dataclass(frozen=True)
class BlockRow:
    """One attention block of one model's seed-0 weights, quantized alone or left out (``int8_blocks.csv`` and the
    report's "Which block costs the INT8 accuracy"; ``deploy.sensitivity``)."""

    model: str = column("as in results.csv (seed 0's weights)", cells={"blocks": Cell("model", _text("model"))})
    layer: int = column("the block's layer index, its class and the attention classes inside it",
                        cells={"blocks": Cell("layer", _text("layer"))})
    block: str = column(cells={"blocks": Cell("block", _text("block"))})
    modules: str = column(cells={"blocks": Cell("attention", _text("modules"))})
    map50_95_fp32: float = column("mAP50-95 of the ONNX export in fp32 and with every Conv/Gemm/MatMul in INT8 "
                                  "(ONNX Runtime QDQ, Ultralytics' policy)",
                                  cells={"blocks": Cell("fp32", _fixed("map50_95_fp32", 4))})
    map50_95_int8: float = column(cells={"blocks": Cell("all INT8", _fixed("map50_95_int8", 4))})
    map50_95_all_but: float = column("every other block INT8, this one in float: the accuracy this block's "
                                     "quantization costs is `map50_95_all_but - map50_95_int8`",
                                     cells={"blocks": Cell("all but this INT8", _fixed("map50_95_all_but", 4))})
    map50_95_only: float = column("only this block INT8, the rest in float",
                                  cells={"blocks": Cell("only this INT8", _fixed("map50_95_only", 4))})


@dataclass(frozen=True)
class ClassApRow:
    """One model on one class over its seeds (``per_class.csv``; the report's "AP per class" table pivots it)."""

    model: str = column("as in summary.csv")
    class_name: str = column("a class with at least one box in the evaluation split")
    ap_mean: float = column("AP@[.50:.95] of that class in Ultralytics' final validation: mean and sample standard "
                            "deviation over the seeds that measured it")
    ap_std: float | None = column()
    seeds: int = column("seeds in the mean")


# the CSVs and the rows they hold
ROW_TYPES = {"results.csv": ResultRow, "summary.csv": SummaryRow, "latency.csv": LatencyRow, "int8.csv": Int8Row,
             "int8_summary.csv": Int8SummaryRow, "int8_blocks.csv": BlockRow, "per_class.csv": ClassApRow}


def _marker(csv_name: str) -> str:
    return f"<!-- {csv_name} columns: generated by yoloattn.compare.rows.update_doc from the row's fields -->"


def _generated(csv_name: str) -> re.Pattern:
    return re.compile(re.escape(_marker(csv_name)) + r"\n.*?\n<!-- end -->", re.S)


def doc_blocks() -> dict[str, str]:
    """{CSV name: the block docs/compare.md holds for it}: a marker line, the column table, ``<!-- end -->``."""
    return {name: f"{_marker(name)}\n{columns_markdown(row_type)}\n<!-- end -->"
            for name, row_type in ROW_TYPES.items()}


def update_doc(path: Path) -> bool:
    """Rewrite the generated column tables in ``path``; True when it changed. Raises ValueError when a block's
    marker is missing."""
    text = original = path.read_text()
    for name, block in doc_blocks().items():
        text, count = _generated(name).subn(lambda _, block=block: block, text)  # a function: no escapes
        if count != 1:
            raise ValueError(f"{path}: no generated block for {name} (a line {_marker(name)!r} ... '<!-- end -->')")
    if text != original:
        path.write_text(text)
    return text != original

