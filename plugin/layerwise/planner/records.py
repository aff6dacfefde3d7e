"""The planner's records: a stage, a layout and a plan (pure data, built by keyword).

Layer indices are pipeline-layer indices (ModelSpec.role); sizes and times are per GPU of a
stage's TP group; every figure is PREDICTED by the cost model.
"""

from dataclasses import dataclass

from layerwise.config.sections import Mode, RunConfig
from layerwise.planner.grid import RankGrid


@dataclass(frozen=True, kw_only=True)
class StagePlan:
    """One pipeline stage of replica 0, per GPU (the GPUs of a TP group are alike); it holds
    pipeline layers [first_layer, stop_layer)."""

    index: int
    ranks: tuple[int, ...]
    first_layer: int
    stop_layer: int
    weight_bytes: float
    memory_bytes: float
    weights_fit_l2: bool
    prefill_compute_s: float
    prefill_comm_s: float
    decode_s: float
    """One decode micro-batch through this stage, transfers included."""

    @property
    def num_layers(self) -> int:
        return self.stop_layer - self.first_layer

    @property
    def prefill_s(self) -> float:
        """One chunk through this stage, transfers in and out included."""
        return self.prefill_compute_s + self.prefill_comm_s


@dataclass(frozen=True, kw_only=True)
class Layout:
    """A placement with its chunking and predicted figures (prefill figures for all replicas)."""

    mode: Mode
    grid: RankGrid
    """Which rank runs which replica, stage and tensor shard."""
    tensor_parallel: int
    replicas: int
    chunk_tokens: int
    micro_batches: int
    micro_batch_rows: int
    chunk_fits_l2: bool
    stages: tuple[StagePlan, ...]
    prefill_s: float
    tps: float
    tpot_s: float
    """Seconds per decode step of the replica's whole batch: a sequence's time per token."""
    decode_micro_batches: int
    decode_streamed: bool
    """Decode steps stream through the pipeline (decode_micro_batches >= stages), else each
    step fills and drains it (pipeline.decode_period)."""
    decode_tps: float
    bubble_fraction: float
    utilisation: float
    comm_fraction: float
    memory_bytes_per_gpu: float
    notes: tuple[str, ...] = ()
    tpot_without_l2_s: float = 0.0
    """tpot_s with every stage's weights read from HBM: what L2 residency changed."""
    forced_split: tuple[int, ...] | None = None
    """The config's stage_layers when it placed the layers (pipeline layers per stage for the
    layer-wise layout, blocks for the baseline); None when the planner chose the split."""
    tpot_device_s: float | None = None
    """tpot_s without this runtime's host time (layer calls, engine schedule): the kernels and
    links alone, what an engine replaying the step from a CUDA graph pays; set by make_plan on
    the layouts it reports (pricing.device_tpot)."""


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Both layouts for one config; a layout that cannot run carries the reason instead."""

    config: RunConfig
    baseline: Layout | None
    baseline_error: str
    layerwise: Layout | None
    """The layer-wise layout the run uses: the configured replica count, or the best for the
    objective under "auto"."""
    layerwise_error: str
    roofline_tps: float
    recommended: Mode
    reason: str
    replica_options: tuple[tuple[int, float, float], ...] = ()
    """(replicas, predicted TPS, predicted TPOT s) of the layer-wise layout per replica count."""
    best_layerwise: Layout | None = None
    """The best layer-wise layout for the objective of every replica count priced."""
    replica_subset: bool = False
    """Only some replica counts were priced (over REPLICA_OPTIONS_MAX_GPUS GPUs)."""
    compared: str = ""
    """What the recommendation compared, in one line."""
    candidates: tuple[Layout, ...] = ()
    """Every layout the world size can run that fits (planner/candidates.py), best first for
    the objective: candidates[0] is the recommended layout."""
    skipped: tuple[str, ...] = ()
    """The layouts searched that do not fit memory, one line each with the reason."""

    def layout(self, mode: Mode) -> Layout | None:
        return self.baseline if mode == "baseline" else self.layerwise
