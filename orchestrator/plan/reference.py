"""The reference curve of `prune.against`: per seed, (train seconds, value) points.

- a record folder (relative to the workspace): its seed logs (orchestrator.records.folder),
  each log's `train_time:` lines read with golf_core.logparse (train lines for train_loss,
  validation lines for val_bpb_step);
- `mlflow:EXPERIMENT`: that experiment's FINISHED script runs in this tracking store, each run's
  metric history joined by step with `curve_train_time_s` (which golf logs beside every streamed
  point, so a curve keeps its train time).

Read at plan time: a reference that does not exist or has no curve in train seconds is one line
naming `prune.against`, before any job.
"""
from __future__ import annotations

from pathlib import Path

from orchestrator.spec.io import SpecError

__all__ = ["TIME_KEY", "curve_of_lines", "load_reference"]

TIME_KEY = "curve_train_time_s"  # logged at each streamed step: the curve's train time
MAX_LOG_BYTES = 64 * 1024 * 1024  # a train log is never this big


def curve_of_lines(lines, metric: str) -> list[tuple[float, float]]:
    """(train seconds, value) of a log's lines: train_loss from training lines, val_bpb from
    validation lines; lines without a `train_time:` are skipped."""
    from golf_core.logparse import parse_line

    kind, key = ("train", "train_loss") if metric == "train_loss" else ("val", "val_bpb")
    out = []
    for line in lines:
        ev = parse_line(line)
        if ev is None or ev.kind != kind:
            continue
        t, v = ev.values.get("train_time_ms"), ev.values.get(key)
        if isinstance(t, (int, float)) and isinstance(v, (int, float)):
            out.append((t / 1000.0, float(v)))
    return sorted(out)


def _from_folder(path: Path, metric: str) -> dict[str, list[tuple[float, float]]]:
    """Every `*.log` / `*.txt` of the folder with a curve (a record's seed logs, named by seed
    as orchestrator.records.folder reads them; a finished score line is not needed)."""
    from orchestrator.records.folder import _SEED_IN_NAME

    out = {}
    for p in sorted(path.iterdir()):
        if p.suffix not in (".log", ".txt") or not p.is_file() or p.stat().st_size > MAX_LOG_BYTES:
            continue
        curve = curve_of_lines(p.read_text(encoding="utf-8", errors="replace").splitlines(), metric)
        if curve:
            m = _SEED_IN_NAME.search(p.name)
            out[m.group(1) if m else p.name] = curve
    return out


def _from_mlflow(uri: str | None, experiment: str, metric: str) -> dict[str, list[tuple[float, float]]]:
    from orchestrator.tracking.client import make_client, resolve_tracking_uri, search_all

    client = make_client(resolve_tracking_uri(uri))
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SpecError([f"prune.against: no MLflow experiment {experiment!r}"])
    out = {}
    key = "train_loss" if metric == "train_loss" else "val_bpb_step"
    for r in search_all(client, exp.experiment_id, "attributes.status = 'FINISHED'"):
        times = {m.step: m.value for m in client.get_metric_history(r.info.run_id, TIME_KEY)}
        pts = sorted((times[m.step], m.value) for m in client.get_metric_history(r.info.run_id, key)
                     if m.step in times)
        if pts:
            out[r.info.run_id] = pts
    return out


def load_reference(against: str, metric: str, workspace: str | Path = ".", tracking_uri: str | None = None
                   ) -> dict[str, list[tuple[float, float]]]:
    """Per reference seed (or run), its curve; SpecError (one line) when missing or empty."""
    if against.startswith("mlflow:"):
        curves = _from_mlflow(tracking_uri, against.removeprefix("mlflow:"), metric)
    else:
        p = Path(against)
        path = p if p.is_absolute() else Path(workspace) / p
        if not path.is_dir():
            raise SpecError([f"prune.against: {against}: no such record folder"])
        curves = _from_folder(path, metric)
    if not curves:
        raise SpecError([f"prune.against: {against} has no {metric} curve in train seconds (log lines with "
                         "`train_time:`)"])
    return curves
