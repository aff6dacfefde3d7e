"""Pipeline timing formulas over per-stage times (docs/cost-model.md, "Pipeline"): a prefill
batch of micro-batches, its bubble and utilisation, a decode step streamed or not, and ranks
that share CPU cores."""


def pipeline_time(stage_times: list[float], micro_batches: int) -> float:
    """Synchronous pipeline: the first chunk crosses every stage, the rest follow one per period."""
    return sum(stage_times) + (micro_batches - 1) * max(stage_times)


def decode_period(stage_times: list[float], micro_batches: int, steps: int) -> tuple[float, bool]:
    """(seconds per decode step of all the micro-batches, streamed?).

    With at least as many micro-batches as stages the steps stream: a micro-batch's next step
    enters the pipeline behind the others' current one, by when its own trip is done, so no
    stage drains between steps: pipeline_time(times, steps x micro_batches) / steps, which tends
    to micro_batches x slowest stage. With fewer, each step fills and drains the pipeline:
    pipeline_time(times, micro_batches) = the trip + (micro_batches - 1) x slowest stage.
    """
    if micro_batches >= len(stage_times):
        return pipeline_time(stage_times, steps * micro_batches) / steps, True
    return pipeline_time(stage_times, micro_batches), False


def bubble_fraction(stage_times: list[float], micro_batches: int) -> float:
    """Share of the batch time the slowest stage waits for fill and drain: (S-1)/(m+S-1) when
    stages are balanced."""
    slowest = max(stage_times)
    return 1.0 - micro_batches * slowest / pipeline_time(stage_times, micro_batches)


def utilisation(stage_times: list[float], micro_batches: int) -> float:
    """Busy share of all stages' time: below 1 - bubble when stages are unbalanced."""
    busy = micro_batches * sum(stage_times)
    return busy / (len(stage_times) * pipeline_time(stage_times, micro_batches))


def on_shared_cores(elapsed_s: float, busy_s: float, cores: float) -> float:
    """A run's time when its ranks share `cores` CPU cores (0: each has its own device): no
    less than all ranks' busy time spread over the cores."""
    return max(elapsed_s, busy_s / cores) if cores else elapsed_s
