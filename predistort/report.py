"""How results are shown: one picture's result, its Markdown and figure, training progress, durations, tables.

Pure presentation — no rendering, no state. The page (app.py), the session (predistort.service) and the
CLI all phrase results through these functions, so a number reads the same everywhere.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

FIGURE_PANEL = 256                    # pixels: width of each panel of a comparison figure (texels enlarged)


def format_duration(seconds):
    """``59 s``, ``1 min 01 s``, ``1 h 01 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"


@dataclass
class Result:
    """One picture's before/after, as the page shows it."""
    name: str                            # the picture's file name
    comparison: object                   # predistort.pipeline.Comparison (tensors on the CPU, metrics)
    notes: list                          # what was done to the picture (crop, resize, ...)

    @property
    def metrics(self):
        """The API's metrics dict: texture, resolution, spp, L1/PSNR before and after, notes (and refine)."""
        m = self.comparison.metrics
        out = {"texture": self.name, "resolution": int(self.comparison.target.shape[0]), "spp": int(m["spp"]),
               **{k: float(m[k]) for k in ("l1_initial", "l1_final", "psnr_initial", "psnr_final", "l1_ratio")},
               "psnr_gain_db": float(m["psnr_final"] - m["psnr_initial"]), "notes": list(self.notes)}
        out.update({k: float(m[k]) for k in ("apply_seconds", "probe_seconds") if k in m})
        if m.get("refine"):
            out["refine"] = dict(m["refine"])
        return out

    def figure(self, scale=None):
        """Side by side: render without pre-distortion, input, pre-distorted, render of the pre-distorted.

        ``scale`` enlarges each texel (nearest neighbour); default: panels about :data:`FIGURE_PANEL` wide.
        """
        from .images import side_by_side
        c, m = self.comparison, self.comparison.metrics
        scale = scale or max(1, round(FIGURE_PANEL / c.target.shape[1]))
        return side_by_side(
            [c.initial, c.target, c.predistorted, c.final],
            ["Render, no pre-distortion", f"Input: {_short(self.name)}", "Pre-distorted texture",
             "Render of the pre-distorted"],
            [f"L1 {m['l1_initial']:.4f} · PSNR {m['psnr_initial']:.1f} dB", "target", "what goes on the plane",
             f"L1 {m['l1_final']:.4f} · PSNR {m['psnr_final']:.1f} dB"], scale=scale)


def _short(name, n=24):
    return name if len(name) <= n else name[: n - 1] + "…"


def stack_figures(images, background=(255, 255, 255)):
    """One PIL image: the given PIL images one below the other."""
    from PIL import Image
    width = max(im.width for im in images)
    out = Image.new("RGB", (width, sum(im.height for im in images)), background)
    y = 0
    for im in images:
        out.paste(im.convert("RGB"), (0, y))
        y += im.height
    return out


def metrics_markdown(metrics):
    """One line of Markdown for a Result's metrics."""
    return (f"**{metrics['texture']}** at {metrics['resolution']}×{metrics['resolution']}, spp {metrics['spp']}: "
            f"without pre-distortion L1 **{metrics['l1_initial']:.4f}**, PSNR **{metrics['psnr_initial']:.2f} dB** → "
            f"with it L1 **{metrics['l1_final']:.4f}**, PSNR **{metrics['psnr_final']:.2f} dB** "
            f"({metrics['psnr_gain_db']:+.2f} dB)" + refine_markdown(metrics.get("refine")))


def refine_markdown(refined):
    """``; refined for S s (N steps): ...`` for a metrics dict's ``refine`` entry ('' when there is none)."""
    if not refined:
        return ""
    return (f"; refined for {refined['seconds']:.1f} s ({refined['steps']} steps): fixed-seed spp-"
            f"{refined.get('eval_spp', 64)} L1 {refined['l1_start']:.4f} → {refined['l1']:.4f}")


def notes_markdown(results_or_notes):
    """Markdown list of what was done to the pictures (crop / resize notes): Results or (name, notes) pairs."""
    lines = []
    for item in results_or_notes:
        name, notes = (item.name, item.notes) if isinstance(item, Result) else item
        lines += [f"- {name}: {n}" for n in notes]
    return "\n".join(lines)


def train_metrics(plan, history, results, elapsed, stopped, median_seconds):
    """The /train metrics dict: the plan's method and sizes, iterations run, time (``median_seconds``: the
    median iteration), first and last loss, each picture's Result metrics and their means."""
    per = [r.metrics for r in results]
    out = {"method": plan["method"], "iterations": plan["iterations"], "iterations_run": len(history),
           "stopped": bool(stopped and len(history) < plan["iterations"]), "seconds": elapsed,
           "seconds_per_iteration": elapsed / len(history) if history else None,
           "seconds_per_iteration_median": median_seconds,
           "first_train_loss": history[0]["loss"] if history else None,
           "final_train_loss": history[-1]["loss"] if history else None,
           "resolution": plan["resolution"], "spp": plan["spp"], "eval_spp": per[0]["spp"] if per else None,
           "scene": {"sphere_ior": plan["sphere_ior"], "sphere_radius": plan["sphere_radius"]},
           "textures": per}
    if per:
        out.update({f"{k}_mean": sum(m[k] for m in per) / len(per)
                    for k in ("l1_initial", "l1_final", "psnr_initial", "psnr_final")})
    return out


def history_table(history):
    """The loss history as a pandas DataFrame (iteration, loss) for a line plot."""
    import pandas as pd
    return pd.DataFrame({"iteration": [h["iteration"] for h in history], "loss": [h["loss"] for h in history]})


def progress_html(fraction, description):
    """A progress bar with a description, for the page (plain HTML, no script)."""
    return (f'<div class="train-progress"><progress value="{fraction:.4f}" max="1" style="width:100%">'
            f'{100 * fraction:.0f}%</progress><div>{html.escape(description)}</div></div>')


@dataclass
class TrainEvent:
    """What :meth:`predistort.service.Session.train` yields: progress after each iteration, then one final event."""
    iteration: int
    total: int
    loss: float | None
    elapsed: float
    eta: float | None                    # seconds left (None before the first iteration)
    history: list                        # [{"iteration", "loss", "seconds"}] so far
    done: bool = False
    stage: str = "training"              # "starting" | "waiting" | "training" | "evaluating" | "done"
    weights_zip: str | None = None       # final event: the trained weights (safetensors + config.json), zipped
    metrics: dict | None = None          # final event: see Session.train
    results: list = field(default_factory=list)

    @property
    def fraction(self):
        return 1.0 if self.done else (self.iteration / self.total if self.total else 0.0)

    def html(self):
        """A progress bar with the description, for the page."""
        return progress_html(self.fraction, self.description)

    @property
    def description(self):
        if self.stage == "starting":
            return "Starting: building the model and the scene (a scene not seen before is measured first)…"
        if self.stage == "waiting":
            return "Waiting for the previous training on this server to end…"
        if self.stage == "evaluating":
            return "Evaluating the trained model on the pictures…"
        if self.done:
            return f"Done: {self.iteration} iterations in {format_duration(self.elapsed)}"
        loss = f" · loss {self.loss:.4f}" if self.loss is not None else ""
        eta = f" · {format_duration(self.eta)} left" if self.eta is not None else ""
        return f"Iteration {self.iteration}/{self.total}{loss}{eta}"
