"""results.json: its schema, the row keys that make a rerun skip finished rows, upsert,
aggregation over seeds and the gain over random init, and the pretraining records."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from benchmarks.profiles import DEFAULT_VARIANT, METHODS

SCHEMA_VERSION = 1


def curve_key(row: Mapping[str, Any]) -> Tuple[str, int, int]:
    return (row["method"], int(row["train_size"]), int(row["seed"]))


def objective_key(row: Mapping[str, Any]) -> Tuple[str, int, int]:
    return (row["variant"], int(row["train_size"]), int(row["seed"]))


def upsert(rows: List[Dict[str, Any]], row: Dict[str, Any], key: Callable) -> None:
    """Replaces the row with the same key, or appends."""
    k = key(row)
    for i, r in enumerate(rows):
        if key(r) == k:
            rows[i] = row
            return
    rows.append(row)


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def aggregate(rows: Iterable[Mapping[str, Any]], key: str = "method") -> Dict[str, Dict[int, Dict[str, float]]]:
    """{method: {train_size: {mean, std (sample), min, max, n}}} of the rows' accuracy;
    rows with accuracy None are left out."""
    groups: Dict[str, Dict[int, List[float]]] = {}
    for r in rows:
        if r.get("accuracy") is None:
            continue
        groups.setdefault(r[key], {}).setdefault(int(r["train_size"]), []).append(float(r["accuracy"]))
    out: Dict[str, Dict[int, Dict[str, float]]] = {}
    for name, by_size in groups.items():
        for size, values in sorted(by_size.items()):
            mean, std = _mean_std(values)
            out.setdefault(name, {})[size] = {"mean": mean, "std": std, "min": min(values),
                                              "max": max(values), "n": len(values)}
    return out


def gains(agg: Mapping[str, Mapping[int, Mapping[str, float]]], baseline: str = "random"
          ) -> Dict[str, Dict[int, float]]:
    """{method: {size: mean accuracy - baseline's mean}} where both exist."""
    base = agg.get(baseline, {})
    return {m: {s: v["mean"] - base[s]["mean"] for s, v in by_size.items() if s in base}
            for m, by_size in agg.items() if m != baseline}


def ordered_methods(names: Iterable[str]) -> List[str]:
    names = set(names)
    return [m for m in METHODS if m in names] + sorted(names - set(METHODS))


REQUIRED = {
    "machine": ("cores", "peak_gflops"),
    "corruption": ("pairs_per_s", "nlpaug_per_s", "ids_pairs_per_s"),
    "pretrain": ("tokens_per_s", "model_gflops", "mfu", "heldout_accuracy", "frequency_probe_accuracy",
                 "wall_seconds"),
    "cache": ("cached_seconds_per_epoch", "uncached_seconds_per_epoch", "speedup"),
    "restore": ("restore_seconds", "saver_seconds"),
}
ROW_FIELDS = {"learning_curve": ("method", "train_size", "seed", "accuracy"),
              "objectives": ("variant", "train_size", "seed", "accuracy")}


def check_results(results: Mapping[str, Any]) -> List[str]:
    """Schema problems of a results dict (sections present so far); [] when fine."""
    problems = []
    if results.get("schema") != SCHEMA_VERSION:
        problems.append(f"schema is {results.get('schema')!r}, expected {SCHEMA_VERSION}")
    for section, keys in REQUIRED.items():
        if section not in results:
            continue
        missing = [k for k in keys if k not in results[section]]
        if missing:
            problems.append(f"{section}: missing {', '.join(missing)}")
    for section, fields in ROW_FIELDS.items():
        rows = results.get(section, [])
        if not isinstance(rows, list):
            problems.append(f"{section}: expected a list of rows")
            continue
        seen = set()
        key = curve_key if section == "learning_curve" else objective_key
        for i, row in enumerate(rows):
            missing = [f for f in fields if f not in row]
            if missing:
                problems.append(f"{section}[{i}]: missing {', '.join(missing)}")
                continue
            if key(row) in seen:
                problems.append(f"{section}[{i}]: duplicate row {key(row)}")
            seen.add(key(row))
            acc = row["accuracy"]
            if acc is not None and not 0.0 <= acc <= 1.0:
                problems.append(f"{section}[{i}]: accuracy {acc} outside [0, 1]")
    return problems


def protocol_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    return [f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def new_results(protocol: Mapping[str, Any]) -> Dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "protocol": dict(protocol), "machine": {}, "data": {},
            "learning_curve": [], "objectives": [], "objective_pretrain": {}, "stage_seconds": {}}


def pretrain_record(summary: Mapping[str, Any], wall: Optional[float], source: str) -> Dict[str, Any]:
    """The results.json view of a `training.pretrain` summary."""
    heldout = dict(summary.get("heldout") or {})
    probe = dict(summary.get("frequency_probe") or {})
    return {
        "source": source,
        "steps": summary.get("steps"),
        "tokens_per_s": summary.get("tokens_per_second"),
        "model_gflops": summary.get("model_gflops"),
        "peak_gflops": summary.get("peak_gflops"),
        "mfu": summary.get("mfu"),
        "sentence_gflops": summary.get("sentence_gflops"),
        "sentence_mfu": summary.get("sentence_mfu"),
        "heldout_accuracy": heldout.get("accuracy"),
        "heldout_pairwise_accuracy": heldout.get("pairwise_accuracy"),
        "frequency_probe_accuracy": probe.get("single_accuracy"),
        "frequency_probe_pairwise_accuracy": probe.get("pairwise_accuracy"),
        "heldout": heldout,
        "pooled_features": summary.get("pooled_features"),
        "train_seconds": summary.get("train_seconds_this_session"),
        "wall_seconds": None if wall is None else round(wall, 1),
    }


def pretrain_record_from_manifest(export, source: str) -> Dict[str, Any]:
    """The same record from an export's manifest (an export made elsewhere, or a crash after
    the export was written); the wall time is then unknown (train seconds are kept)."""
    record = pretrain_record(export.manifest.get("metrics") or {}, None, source)
    record["export"] = str(export.path)
    record["model"] = export.config.to_dict()
    record["corpus"] = export.manifest.get("corpus")
    record["config"] = export.manifest.get("pretrain")
    record["objectives_label"] = "+".join(sorted((record["config"] or {}).get("objectives") or {})) or None
    return record


def pretrain_records(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """variant -> pretraining record, the default first."""
    out = {DEFAULT_VARIANT: results["pretrain"]} if results.get("pretrain") else {}
    out.update({k: v for k, v in (results.get("objective_pretrain") or {}).items() if k != DEFAULT_VARIANT})
    return out

def reference_at(results: Mapping[str, Any], size: int) -> Dict[str, Optional[float]]:
    agg = aggregate(results.get("learning_curve") or [])
    return {m: (agg.get(m, {}).get(size) or {}).get("mean") for m in ("random", "word2vec")}

