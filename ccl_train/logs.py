"""The loss log: one CSV row per (step, task, stream), appended and flushed as training goes.

Columns: step, task, stream, loss, count, lr, lr_towers, grad_norm, elapsed, smoothed.
`task` is a DCR task or "all" (every routed row of the stream; stream "total" is the weighted
joint loss that is optimised). `count` is the number of rows (summed over ranks), `lr` the
cross-modal learning rate, `elapsed` seconds since the run started (resumes included), and
`smoothed` a bias-corrected exponential average of that (task, stream) series, so rare tasks
(t2v, t2a at 5 %) are readable despite their noise.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, Tuple

from .losses import STREAMS, TASK_ORDER
from .trainer import StepResult

COLUMNS = ("step", "task", "stream", "loss", "count", "lr", "lr_towers", "grad_norm", "elapsed", "smoothed")


class LossLog:
    def __init__(self, path: str, smoothing: float, every: int = 1):
        self.path, self.beta, self.every = path, smoothing, every
        self.series: Dict[Tuple[str, str], Tuple[float, int]] = {}  # key -> (average, updates)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self.file = open(path, "a", newline="")
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(COLUMNS)
            self.file.flush()

    def _smooth(self, key, value: float) -> float:
        avg, n = self.series.get(key, (0.0, 0))
        avg, n = self.beta * avg + (1 - self.beta) * value, n + 1
        self.series[key] = (avg, n)
        return avg / (1 - self.beta ** n)

    def record(self, r: StepResult, elapsed: float) -> None:
        """Update every series; write the step's rows if it is one of every `every` steps."""
        rows = []
        for i, task in enumerate(TASK_ORDER + ("all",)):
            for s, stream in enumerate(STREAMS):
                total, count = r.table[i, s].tolist()
                if count:
                    rows.append((task, stream, total / count, int(count)))
        rows.append(("all", "total", r.loss, int(r.table[-1, :, 1].sum().item())))
        for task, stream, loss, count in rows:
            smoothed = self._smooth((task, stream), loss)
            if r.step % self.every == 0:
                self.writer.writerow((r.step, task, stream, f"{loss:.6g}", count, f"{r.lr['fusion']:.6g}",
                                      f"{r.lr['towers']:.6g}", f"{r.grad_norm:.6g}", f"{elapsed:.3f}",
                                      f"{smoothed:.6g}"))
        self.file.flush()

    def state_dict(self) -> dict:
        return {"series": [[t, s, avg, n] for (t, s), (avg, n) in self.series.items()]}

    def load_state_dict(self, state: dict) -> None:
        self.series = {(t, s): (float(avg), int(n)) for t, s, avg, n in state["series"]}

    def close(self) -> None:
        self.file.close()


def truncate(path: str, last_step: int) -> None:
    """Drop rows logged after `last_step` (written after the checkpoint a run resumes from)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_step]
    if len(kept) < len(rows):
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, path)
