"""What ``ghnctl train`` shows: a progress bar with the training numbers, a line per evaluation, a
summary; or, with ``--json``, one JSON record per step and per evaluation on stdout."""

from __future__ import annotations

import math
from typing import Any

from ghnctl.cli.output import Output


class TrainView:
    """Receives the engine's events (``on_event``); nothing is shown on ranks other than 0."""

    def __init__(self, output: Output, *, quiet: bool = False) -> None:
        self.output = output
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None
        self.last_eval: str = "-"
        self.eval_seen = 0  # evaluation architectures also trained on (their accuracy is not zero-shot)

    def __enter__(self) -> TrainView:
        if not self.quiet and not self.output.json_mode:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: I001

            self.progress = Progress(
                MofNCompleteColumn(), BarColumn(bar_width=16), TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"), console=self.output.console, transient=False,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    # ----------------------------------------------------------------------------------------------
    def on_event(self, event: object) -> None:
        if self.quiet:
            return
        from ghnctl.training.train_ghn import CheckpointSaved, EvalDone, StepDone, TrainStarted

        if isinstance(event, TrainStarted):
            self._started(event)
        elif isinstance(event, StepDone):
            self._step(event)
        elif isinstance(event, EvalDone):
            self._eval(event)
        elif isinstance(event, CheckpointSaved) and self.output.json_mode:
            self.output.record({"event": "checkpoint", "step": event.step, "path": str(event.path)})

    def _started(self, event: Any) -> None:
        info = {"event": "start", "total_steps": event.total_steps, "start_step": event.start_step,
                "pool": event.pool, "eval_archs": event.eval_archs, "ghn_params": event.ghn_params,
                "processes": event.world_size, "shards": event.shards, "eval_also_trained": list(event.eval_seen)}
        self.eval_seen = len(event.eval_seen)
        if self.output.json_mode:
            self.output.record(info)
            return
        resumed = f", resuming at step {event.start_step}" if event.start_step else ""
        held_out = event.eval_archs - len(event.eval_seen)
        evaluated = f"{held_out} held out" if not event.eval_seen else \
            f"{event.eval_archs} evaluated ({len(event.eval_seen)} of them also trained on)"
        self.output.note(f"GHN of {event.ghn_params:,} parameters; {event.pool} training architectures, "
                         f"{evaluated}; {event.world_size} process(es){resumed}")
        if event.eval_seen:
            names = ", ".join(event.eval_seen[:3]) + (" ..." if len(event.eval_seen) > 3 else "")
            self.output.warn(f"--eval-archs overlaps --archs ({names}): their accuracy measures fit, not "
                             "zero-shot generalisation (evaluate on deepnets:test or other models for that)")
        self.task = self.progress.add_task("train", total=event.total_steps, completed=event.start_step, stats="")

    def _step(self, event: Any) -> None:
        m = event.metrics
        if self.output.json_mode:
            self.output.record({"event": "step", **m})
            return
        label = "eval" if self.eval_seen else "zero-shot"
        stats = (f"loss {m['loss']:.3f} acc {m['acc']:.1f}% {label} {self.last_eval} "
                 f"{m['images_per_s']:.0f} img/s {m['archs_per_s']:.1f} arch/s")
        self.progress.update(self.task, completed=event.step, stats=stats)

    def _eval(self, event: Any) -> None:
        values = [v for v in event.accuracies.values() if not math.isnan(v)]
        mean = sum(values) / len(values) if values else math.nan
        if self.output.json_mode:
            self.output.record({"event": "zero_shot", "step": event.step, "mean": mean,
                                "accuracies": event.accuracies})
            return
        self.last_eval = f"{mean:.1f}%"
        n = len(event.accuracies)
        if not self.eval_seen:
            what = f"zero-shot top-1 on {n} held-out architectures (never trained on)"
        elif self.eval_seen >= n:
            what = f"top-1 of predicted parameters on {n} architectures also trained on (not zero-shot)"
        else:
            what = f"top-1 of predicted parameters on {n} architectures ({self.eval_seen} also trained on)"
        self.output.console.print(
            f"step {event.step}: {what}: mean {mean:.2f}%, max {max(values, default=math.nan):.2f}%",
            soft_wrap=True)

    # ----------------------------------------------------------------------------------------------
    def finish(self, result: Any) -> None:
        data = {"event": "end", "out": str(result.out), "steps": result.steps, "stopped": result.stopped,
                "last": result.last}
        if self.output.json_mode:
            self.output.record(data)
            return
        state = "stopped" if result.stopped else "done"
        self.output.console.print(f"{state} after {result.steps} steps: {result.out}/ghn.safetensors "
                                  f"(ghnctl predict MODEL --ghn {result.out}/ghn.safetensors)", soft_wrap=True)
        if result.stopped:
            self.output.note(f"continue with: ghnctl train --out {result.out} --resume")
