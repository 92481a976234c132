"""The headline: one short block per workload and machine answering "is it worth it?".

Every sentence is built from measured numbers only, and the console (end of ``bench run`` and
``bench suite``) prints the same sentences the report shows at its top:

- scaling: "2 processes: 1.72× faster than 1 (efficiency 86 %; this machine's ceiling 98 %)",
  the Amdahl fit only with three or more process counts;
- predict modes: the sentences of :func:`reports.predict.headline_lines` (when that module exists);
- devices: "GPU vs CPU: 0.60×", or "no GPU on this machine: not measured";
- backends: "jax: 12.3× faster than tensorflow (cpu×1p×2t, same device, processes and threads; ...)"
  from each run's recorded ``speedup_vs_tensorflow`` (:func:`backend_lines`);
- memory: "fits 24 workers in RAM (measured 792 MiB each)" (:func:`reports.recommend.memory_max_processes`);
- noise: measured between repeats of the same configuration, or "not measured";
- why: the rules of :mod:`reports.why` that the numbers show.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Mapping, Sequence

from bench.model import ratios
from bench.model.strategy import DEFAULT_BACKEND, backend_label
from reports import fmt
from reports.fmt import ok
from reports.load import Inputs, Run
from reports.recommend import memory_max_processes
from reports.tables import runs_frame, scaling_frame
from reports.why import why_lines

NOISE_LIMIT = 0.10  # CV between measurements of the same thing above which timings are unstable


@dataclasses.dataclass(frozen=True)
class Headline:
    """The headline block of one workload on one machine.

    Args:
        label: Machine label.
        workload: Workload name.
        size: Workload size.
        lines: The answers, one sentence each.
        why: The "why" sentences the numbers show (may be empty).
    """

    label: str
    workload: str
    size: str
    lines: tuple[str, ...]
    why: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """``lorenz (quick) on laptop``."""
        return f"{self.workload} ({self.size}) on {self.label}"

    def text(self) -> list[str]:
        """The block as plain text lines (the console's form)."""
        return [self.title + ":"] + [f"  {line}" for line in self.lines] + [f"  why: {w}" for w in self.why]


# ---------------------------------------------------------------- noise



def versus(speedup: float, other: str) -> str:
    """``1.66× faster than 1``, ``0.77× the speed of tensorflow (slower)``, or, where the two round
    to the same figure, ``the same speed as tensorflow (1.00×)`` (never "slower" for a 0.999).

    Args:
        speedup: The other's wall over this wall (a recorded speedup).
        other: What it is compared with (``1``, ``tensorflow``).
    """
    shown = fmt.times(speedup)
    if shown == fmt.times(1.0):
        return f"the same speed as {other} ({shown})"
    return f"{shown} faster than {other}" if speedup > 1 else f"{shown} the speed of {other} (slower)"

def noise_between(runs: Sequence[Run]) -> dict:
    """Timing noise between measurements of the same thing among one workload's runs on one machine.

    Repeated runs of one strategy (several files, or the same sweep run again) are measurements
    of the same trials: their trials are compared configuration by configuration
    (:func:`bench.model.ratios.trial_noise`) and their run walls with each other. A single run's own
    ``noise`` summary (written by :func:`bench.model.ratios.summarize`) is read as recorded; a file
    written before that field existed has no noise figure ("not measured"), rather than the
    spread across different configurations it used to show.

    Args:
        runs: Measured runs of one workload on one machine.

    Returns:
        ``{"measured": True, "cv": worst CV, "what": sentence}`` or ``{"measured": False, "reason"}``.
    """
    by_strategy: dict[tuple, list[Run]] = {}
    for r in runs:
        by_strategy.setdefault((r.size, r.backend, r.device, r.processes, r.threads, r.engine), []).append(r)
    found: list[tuple[float, str]] = []
    for group in by_strategy.values():
        if len(group) >= 2:
            walls = [float(r.summary.wall_s) for r in group if ok(r.summary.wall_s)]
            if len(walls) >= 2 and statistics.fmean(walls) > 0:
                cv = statistics.stdev(walls) / statistics.fmean(walls)
                found.append((cv, f"CV {fmt.pct(cv)} between {len(walls)} repeated runs of {group[0].strategy}"))
            noise = ratios.trial_noise([t for r in group for t in r.trials])
            recorded = False
        else:
            noise = group[0].summary.noise
            recorded = True  # with --repeat K: each trial across the repeats, its noisy trials named
        if isinstance(noise, Mapping) and noise.get("measured") and ok(noise.get("cv_max")):
            n = noise.get("measurements")
            noisy = [str(x.get("id")) for x in noise.get("noisy") or [] if isinstance(x, Mapping)]
            names = f"; over {fmt.pct(noise.get('threshold'))}: {', '.join(noisy[:5])}" + (
                f" and {len(noisy) - 5} more" if len(noisy) > 5 else "") if noisy and recorded else ""
            found.append((float(noise["cv_max"]), f"CV up to {fmt.pct(noise['cv_max'])} between "
                          f"{int(n) if ok(n) else 'repeated'} measurements of the same configuration "
                          f"({group[0].strategy}{names})"))
    if not found:
        return {"measured": False, "reason": ratios.NOT_REPEATED}
    worst = max(found)
    return {"measured": True, "cv": worst[0], "what": worst[1]}


def noise_sentence(noise: Mapping) -> str:
    """``noise: CV 3 % between 2 repeated runs of cpu×1p×2t`` or ``noise not measured (...)``."""
    if not noise.get("measured"):
        return f"noise not measured ({noise.get('reason') or ratios.NOT_REPEATED})"
    unstable = " (unstable: over 10 %)" if float(noise["cv"]) > NOISE_LIMIT else ""
    return f"noise: {noise['what']}{unstable}"


# ---------------------------------------------------------------- the sentences


def amdahl_sentence(f: float, counts: int) -> str:
    """The Amdahl fit in one sentence (the headline's and the report's scaling section's):
    ``Amdahl fit over 3 process counts: serial fraction 0.12 (at most 8.3× with any number of processes)``.

    Args:
        f: The fitted serial fraction (:func:`bench.model.ratios.amdahl_fit`).
        counts: Distinct process counts it was fitted over (the 1-process baseline included).
    """
    cap = f"at most {1 / f:.1f}× with any number of processes" if f > 0 else "no serial part found"
    return f"Amdahl fit over {counts} process counts: serial fraction {f:.2f} ({cap})"


def scaling_lines(sc: Any) -> list[str]:
    """Speedup over 1 process for each N > 1 (with efficiency against ideal and the ceiling).

    Args:
        sc: Rows of :func:`reports.tables.scaling_frame` for one machine, workload and size.
    """
    out = []
    groups = list(dict.fromkeys(zip(sc["backend"], sc["device"])))
    for backend, device in groups:
        g = sc[(sc["backend"] == backend) & (sc["device"] == device)].sort_values("processes")
        prefix = "" if groups == [(DEFAULT_BACKEND, "cpu")] else f"{backend_label(backend, device)}, "
        counts = [int(n) for n in g["processes"]]
        if counts == [1]:
            out.append(f"{prefix}1 process only: run with --processes 1,2 to see whether more processes pay off")
            continue
        if 1 not in counts and not g["speedup"].notna().any():
            continue
        for r in g.itertuples():
            if int(r.processes) == 1 or not ok(r.speedup):
                continue
            ceiling = (f"this machine's ceiling {fmt.pct(r.ceiling)}" if ok(r.ceiling)
                       else "this machine's ceiling not measured: run bench calibrate")
            how = versus(r.speedup, "1")
            reps = int(r.repeats) if ok(getattr(r, "repeats", None)) else 1
            how_sure = ""
            if reps > 1 and ok(getattr(r, "speedup_low", None)) and ok(getattr(r, "speedup_high", None)):
                how += f" [{r.speedup_low:.2f}-{r.speedup_high:.2f}]"
                how_sure = f"median of {reps} repeats, 95 % interval; "
            elif reps <= 1 and int(r.n) == 1:
                how_sure = "single measurement; "
            out.append(f"{prefix}{int(r.processes)} processes: {how} ({how_sure}efficiency {fmt.pct(r.efficiency)}; "
                       f"{ceiling})")
        f = g["serial_fraction"].iloc[0]
        if ok(f):
            out.append(prefix + amdahl_sentence(f, len(set(counts) | {1})))
    return out


def _uses_gpu(run: Run) -> bool:
    return run.device.split(":")[0] == "gpu" or ok(run.summary.gpu_util_p50)


def gpu_line(runs: Sequence[Run], machine: Mapping[str, Any]) -> str:
    """"GPU vs CPU: 0.60×" from the recorded ``speedup_vs_cpu``, or why it was not measured.

    Args:
        runs: Measured runs of one workload on one machine.
        machine: The machine's fingerprint.
    """
    gpu = [r for r in runs if _uses_gpu(r) and ok(r.summary.speedup_vs_cpu)]
    if gpu:
        best = max(gpu, key=lambda r: float(r.summary.speedup_vs_cpu))
        return (f"GPU vs CPU: {fmt.times(best.summary.speedup_vs_cpu)} ({best.strategy} against cpu with "
                f"{best.processes} process{'es' if best.processes > 1 else ''})")
    if not (isinstance(machine.get("gpus"), list) and machine["gpus"]):
        return "no GPU on this machine: not measured"
    if any(_uses_gpu(r) for r in runs):
        return "GPU vs CPU: not measured (no cpu run with the same processes to compare with)"
    return "GPU vs CPU: not measured (run with --device cpu,gpu)"


def _same_work(a: Run, b: Run) -> bool:
    """Two runs of the same workload, size and strategy apart from the backend."""
    return (a.workload, a.size, a.device, a.processes, a.threads, a.engine) == (
        b.workload, b.size, b.device, b.processes, b.threads, b.engine)


def backend_lines(runs: Sequence[Run]) -> list[str]:
    """One sentence per backend other than tensorflow, from the recorded ``speedup_vs_tensorflow``
    (the strategy where it gained most), with both runs' mean quality beside it:
    ``jax: 12.3× faster than tensorflow (cpu×1p×2t: same device, processes and threads; rmse 0.51 vs 0.50)``.
    Nothing when every run is a tensorflow run.

    Args:
        runs: Measured runs of one workload on one machine.
    """
    out = []
    others = list(dict.fromkeys(r.backend for r in runs if r.backend != DEFAULT_BACKEND))
    for backend in others:
        mine = [r for r in runs if r.backend == backend and ok(r.summary.speedup_vs_tensorflow)]
        if not mine:
            out.append(f"{backend} vs tensorflow: not measured (no tensorflow run of the same strategy; "
                       f"run with --backend tensorflow,{backend})")
            continue
        best = max(mine, key=lambda r: float(r.summary.speedup_vs_tensorflow))
        sp = float(best.summary.speedup_vs_tensorflow)
        how = versus(sp, "tensorflow")
        detail = f"{best.plain_strategy}: same device, processes and threads"
        tf = next((r for r in runs if r.backend == DEFAULT_BACKEND and _same_work(r, best)), None)
        key = next(iter(best.quality), None)
        if tf is not None and key is not None and ok(best.quality.get(key)) and ok(tf.quality.get(key)):
            detail += f"; {key} {float(best.quality[key]):.4g} vs {float(tf.quality[key]):.4g}"
        out.append(f"{backend}: {how} ({detail})")
    return out


def memory_line(runs: Sequence[Run], machine: Mapping[str, Any]) -> str | None:
    """"fits 24 workers in RAM (measured 792 MiB each)" from the largest measured worker peak.

    Args:
        runs: Measured runs of one workload on one machine.
        machine: The machine's fingerprint (``ram_bytes``).
    """
    peaks = [float(r.summary.peak_worker_rss_bytes) for r in runs if ok(r.summary.peak_worker_rss_bytes)]
    peaks += [float(t.peak_rss_bytes) for r in runs for t in r.trials if t.peak_rss_bytes]
    if not peaks:
        return None
    peak = max(peaks)
    n = memory_max_processes(peak, machine.get("ram_bytes"))
    if n is None:
        return None
    if n < 1:
        return f"one worker does not fit in RAM with headroom (measured {fmt.nbytes(peak)} per worker)"
    return f"fits {n} worker{'s' if n != 1 else ''} in RAM (measured {fmt.nbytes(peak)} each)"


def predict_lines(runs: Sequence[Run]) -> list[str]:
    """The predict-mode sentences of :func:`reports.predict.headline_lines` for each run, named
    by strategy when there are several, then seed 000's measured chain (:func:`reports.predict.chain`).

    Args:
        runs: Measured runs of one workload on one machine.
    """
    from reports.predict import chains, headline_lines, is_predict_run

    mine = [r for r in runs if is_predict_run(r)]  # declared predict-mode trials (predict_modes, model)
    out: list[str] = []
    for r in mine:
        prefix = f"{r.strategy}: " if len(mine) > 1 else ""
        out.extend(prefix + line for line in headline_lines(r) if prefix + line not in out)
    found = [c for c in chains(mine) if c.get("text")] if mine else []
    for c in found:  # one chain per device (and backend: ``jax:cpu``); named when there are several
        out.append((f"{c['device']}: " if len(found) > 1 else "") + str(c["text"]))
    return out


# ---------------------------------------------------------------- front


def headlines(inputs: Inputs, df: Any = None, sc: Any = None) -> list[Headline]:
    """One block per (machine, workload, size) with at least one measured run, in input order.

    Args:
        inputs: Loaded result files.
        df: Their :func:`reports.tables.runs_frame`, when the caller already built it.
        sc: Their :func:`reports.tables.scaling_frame`, when the caller already built it.
    """
    if sc is None:
        sc = scaling_frame(runs_frame(inputs) if df is None else df, inputs)
    groups: dict[tuple, list[Run]] = {}
    for r in inputs.runs:
        if r.status == "complete" and (r.ok_trials or ok(r.summary.wall_s)):
            groups.setdefault((r.label, r.workload, r.size), []).append(r)
    out = []
    for (label, workload, size), runs in groups.items():
        machine = inputs.machine(label)
        lines = []
        mine = sc[(sc["label"] == label) & (sc["workload"] == workload) & (sc["size"] == size)]
        if len(mine):
            lines += scaling_lines(mine)
        lines += predict_lines(runs)
        lines += backend_lines(runs)
        lines.append(gpu_line(runs, machine))
        mem = memory_line(runs, machine)
        if mem:
            lines.append(mem)
        lines.append(noise_sentence(noise_between(runs)))
        out.append(Headline(label=label, workload=workload, size=size, lines=tuple(lines),
                            why=tuple(why_lines(runs, machine))))
    return out


def headline_text(inputs: Inputs) -> list[str]:
    """Every headline block as plain text lines (what the console prints).

    Args:
        inputs: Loaded result files.
    """
    return [line for h in headlines(inputs) for line in h.text()]


__all__ = ["Headline", "NOISE_LIMIT", "amdahl_sentence", "backend_lines", "gpu_line", "headline_text", "headlines", "memory_line", "noise_between",
           "noise_sentence", "predict_lines", "scaling_lines"]
