"""One layer-wise run on this rank: set up, time prefill and decode, verify, report on rank 0."""

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from layerwise.config import RunConfig
from layerwise.layouts import Layout
from layerwise.plan import Plan
from layerwise.runtime.distributed import DistEnv, init, singleton_groups
from layerwise.runtime.mock import apply_cpu_mock_patches

if TYPE_CHECKING:  # imported at run time only after the CPU mock patches
    from layerwise.runtime.verify import Verdict

MOCK_DEVICE = "cpu (mock)"


@dataclass(frozen=True)
class Report:
    """What rank 0 prints and writes; `ok` is False when verification failed."""

    table: str
    results: dict
    ok: bool


def _row(label: str, predicted: float | None, measured: float | None, fmt: str) -> str:
    def cell(value: float | None) -> str:
        return "not measured" if value is None else format(value, fmt)

    ratio = f"{measured / predicted:.3f}" if measured is not None and predicted else "-"
    return f"{label:<26}{cell(predicted):>16}{cell(measured):>16}{ratio:>12}"


def _figures(tps: float, tpot_ms: float | None) -> dict:
    return {"tps": tps, "tpot_ms": tpot_ms, "inv_tps_ms": 1e3 / tps}


def run(config: RunConfig, plan: Plan, env: DistEnv, verify: bool) -> Report:
    cuda = torch.cuda.is_available()
    if not cuda:
        apply_cpu_mock_patches()
    init(env, cuda, config.run.timeout_s)
    from tqdm import tqdm

    from layerwise.runtime import runner
    from layerwise.runtime import verify as checks

    device = torch.device("cuda", env.local_rank) if cuda else torch.device("cpu")
    layout = plan.layerwise
    where = runner.placement(layout, env)
    groups = singleton_groups()
    engine = runner.build_engine(config, layout, device, groups)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    barrier = torch.distributed.barrier
    decode_measured = config.model.kind == "dense"  # gpt decode needs a KV cache: not yet
    iterations = config.run.warmup_iters + config.run.timed_iters
    bar = tqdm(
        total=iterations * (2 if decode_measured else 1),
        desc="layerwise run",
        disable=not env.is_main,
        delay=2.0,
    )

    def prefill():
        return runner.run_batch(
            engine, runner.prefill_inputs(config, layout, where, device), layout.micro_batches
        )

    prefill_s, outputs = runner.timed(prefill, iterations, barrier, sync, bar.update)
    prefill_s = prefill_s[config.run.warmup_iters :]
    decode_s = []
    if decode_measured:

        def decode():
            return runner.run_batch(
                engine,
                runner.decode_inputs(config, layout, where, device),
                layout.decode_micro_batches,
            )

        decode_s, _ = runner.timed(decode, iterations, barrier, sync, bar.update)
        decode_s = decode_s[config.run.warmup_iters :]
    bar.close()

    verdict = None
    if verify:
        count = checks.chunks_to_verify(config, layout)
        shape = checks.chunk_shape(config, layout)
        dtype = runner.TORCH_DTYPES[config.run.dtype]
        got = checks.gather_to_rank0(
            outputs if where.is_last else None,
            count,
            where.last_rank(0),
            env.rank,
            shape,
            dtype,
            device,
        )
        if env.is_main:
            expected = checks.reference(config, layout, range(count), device, groups)
            verdict = checks.compare(got, expected, config.run.dtype)
    barrier()
    torch.distributed.destroy_process_group()
    device_name = torch.cuda.get_device_name(device) if cuda else MOCK_DEVICE
    return report(config, layout, env, device_name, prefill_s, decode_s, verdict)


def report(
    config: RunConfig,
    layout: Layout,
    env: DistEnv,
    device_name: str,
    prefill_s: list[float],
    decode_s: list[float],
    verdict: "Verdict | None",
) -> Report:
    """Median measured figures beside the plan's, as rank 0's table and results JSON."""
    measured_tps = config.workload.prefill_tokens / statistics.median(prefill_s)
    measured_tpot = statistics.median(decode_s) * 1e3 if decode_s else None
    predicted = _figures(layout.tps, layout.tpot_s * 1e3)
    measured = _figures(measured_tps, measured_tpot)
    mock = (
        " (CPU mock mode: gloo; predictions use the uncalibrated profile)"
        if device_name == MOCK_DEVICE
        else ""
    )
    lines = [
        f"layerwise run of {config.source}: {config.model.name} on {env.world_size} ranks{mock}",
        f"{layout.replicas} replica(s) x {len(layout.stages)} stages, chunk "
        f"{layout.chunk_tokens:,} tokens x {layout.micro_batches} micro-batches; decode in "
        f"{layout.decode_micro_batches} micro-batch(es); median of {config.run.timed_iters} "
        f"timed runs after {config.run.warmup_iters} warm-up",
        f"{'':<26}{'PREDICTED':>16}{'MEASURED':>16}{'meas/pred':>12}",
        _row("prefill TPS (tokens/s)", predicted["tps"], measured["tps"], ",.0f"),
        _row("TPOT (ms, decode step)", predicted["tpot_ms"], measured["tpot_ms"], ".3f"),
        _row("1/TPS (ms)", predicted["inv_tps_ms"], measured["inv_tps_ms"], ".6f"),
    ]
    if not decode_s:
        lines.append(
            "TPOT of a gpt model needs a KV cache, which the runtime does not keep yet:"
            " only the PREDICTED TPOT is shown"
        )
    results = {
        "mode": config.mode,
        "config": config.source,
        "world_size": env.world_size,
        "device": device_name,
        "predicted": predicted,
        "measured": {**measured, "prefill_s": prefill_s, "decode_s": decode_s},
    }
    ok = True
    if verdict is not None:
        ok = verdict.ok
        lines.append(
            f"verify: {verdict.chunks} chunk(s) vs one process: max abs error "
            f"{verdict.max_abs_error:.3e}, relative {verdict.relative_error:.3e} "
            f"(tolerance {verdict.tolerance:.0e}): {'ok' if ok else 'FAILED'}"
        )
        results["verify"] = {
            "chunks": verdict.chunks,
            "max_abs_error": verdict.max_abs_error,
            "relative_error": verdict.relative_error,
            "ok": ok,
        }
    return Report("\n".join(lines), results, ok)
