"""What a restore did: restored, missing, unexpected and mismatched variables, what is frozen
and what trains, and the vocabulary remapping; printable as one table."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

from auxpretrain.model.variables import strip_suffix


@dataclasses.dataclass
class Mismatch:
    """An export variable whose graph counterpart has another shape or dtype."""

    name: str  # export name
    target: str  # graph variable name
    export_shape: Tuple[int, ...]
    graph_shape: Tuple[Optional[int], ...]
    export_dtype: str
    graph_dtype: str

    def __str__(self):
        where = "" if self.target == self.name else f" (graph variable {self.target})"
        return (f"{self.name}{where}: export {shape_str(self.export_shape)} {self.export_dtype}, "
                f"graph {shape_str(self.graph_shape)} {self.graph_dtype}")

@dataclasses.dataclass
class RestoreReport:
    """What `restore` did. Names are graph variable names without ':0' unless noted."""

    source: str = "values"  # export path, or "values" for an in-memory dict
    verified: bool = False  # checksums of the export's files were verified
    layers: List[str] = dataclasses.field(default_factory=list)  # export layers asked for
    restored: List[str] = dataclasses.field(default_factory=list)  # graph variables given values
    mapping: Dict[str, str] = dataclasses.field(default_factory=dict)  # export name -> graph name
    missing: List[str] = dataclasses.field(default_factory=list)  # export names asked for, absent
    unexpected: List[str] = dataclasses.field(default_factory=list)  # graph layer variables the export lacks
    mismatched: List[Mismatch] = dataclasses.field(default_factory=list)
    not_selected: List[str] = dataclasses.field(default_factory=list)  # export names left out by `layers`
    frozen: List[str] = dataclasses.field(default_factory=list)  # restored/layer variables not trained
    trainable: List[str] = dataclasses.field(default_factory=list)  # restored/layer variables trained
    shapes: Dict[str, Tuple[int, ...]] = dataclasses.field(default_factory=dict)  # graph name -> shape
    vocab_rows_copied: Optional[int] = None  # embedding rows copied by token (None: no remap)
    vocab_rows_new: Optional[int] = None  # rows of words the export lacks (mean row init)
    method: str = "none"  # "saver" (read from the checkpoint) or "feed" (values fed once)

    @property
    def ok(self) -> bool:
        """True when nothing asked for was missing or mismatched."""
        return not self.missing and not self.mismatched

    def set_trainable(self, trained: Sequence[str]) -> None:
        """Recomputes frozen/trainable from the variable names an optimizer actually trains."""
        trained = {strip_suffix(n) for n in trained}
        names = unique(list(self.restored) + list(self.unexpected) + list(self.frozen)
                        + list(self.trainable))
        self.frozen = [n for n in names if n not in trained]
        self.trainable = [n for n in names if n in trained]

    def merge(self, other: "RestoreReport") -> "RestoreReport":
        """Report of two restores of one export (e.g. a frozen lower graph + an upper graph)."""
        out = RestoreReport(source=self.source, verified=self.verified and other.verified)
        for f in ("layers", "restored", "missing", "unexpected", "not_selected", "frozen",
                  "trainable"):
            setattr(out, f, unique(getattr(self, f) + getattr(other, f)))
        restored = set(out.restored)
        out.not_selected = [n for n in out.not_selected if n not in restored
                            and n not in self.mapping and n not in other.mapping]
        out.unexpected = [n for n in out.unexpected if n not in restored]
        out.trainable = [n for n in out.trainable if n not in set(out.frozen)]
        out.mapping = {**self.mapping, **other.mapping}
        out.mismatched = self.mismatched + other.mismatched
        out.shapes = {**self.shapes, **other.shapes}
        copied = [r for r in (self.vocab_rows_copied, other.vocab_rows_copied) if r is not None]
        new = [r for r in (self.vocab_rows_new, other.vocab_rows_new) if r is not None]
        out.vocab_rows_copied = copied[0] if copied else None
        out.vocab_rows_new = new[0] if new else None
        out.method = "+".join(unique([m for m in (self.method, other.method) if m != "none"])) or "none"
        return out

    def summary(self) -> str:
        """One line: counts."""
        line = (f"{len(self.restored)} restored, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.mismatched)} mismatched, "
                f"{len(self.frozen)} frozen, {len(self.trainable)} trainable")
        if self.vocab_rows_copied is not None:
            line += f"; vocabulary: {self.vocab_rows_copied} rows copied, {self.vocab_rows_new} new"
        return line

    def __str__(self) -> str:
        check = "checksums verified" if self.verified else "checksums not verified"
        if self.source == "values":
            check = "in-memory values"
        lines = [f"restore from {self.source} ({check}): {self.summary()}"]
        if self.method == "initialiser":
            lines = [f"no restore, random init: {len(self.unexpected)} variables from their initialisers "
                     f"({len(self.frozen)} frozen, {len(self.trainable)} trainable)"]
        rows = []
        frozen = set(self.frozen)
        reverse = {v: k for k, v in self.mapping.items()}
        for name in self.restored:
            src = reverse.get(name, name)
            label = name if src == name else f"{src} -> {name}"
            rows.append((label, shape_str(self.shapes.get(name, ())), "restored",
                         "frozen" if name in frozen else "trainable"))
        for name in self.missing:
            rows.append((name, "", "MISSING", ""))
        for m in self.mismatched:
            rows.append((m.name, f"{shape_str(m.export_shape)} vs {shape_str(m.graph_shape)}",
                         "MISMATCHED", ""))
        for name in self.unexpected:
            rows.append((name, shape_str(self.shapes.get(name, ())), "not in export (initialiser)",
                         "frozen" if name in frozen else "trainable"))
        if self.not_selected:
            rows.append((", ".join(self.not_selected), "", "not selected", ""))
        if rows:
            widths = [max(len(r[i]) for r in rows + [("variable", "shape", "status", "")])
                      for i in range(4)]
            head = ("variable", "shape", "status", "training")
            lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
            for r in rows:
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if self.vocab_rows_copied is not None:
            lines.append(f"  vocabulary remapped by token: {self.vocab_rows_copied} rows copied, "
                         f"{self.vocab_rows_new} new words start at the mean pretrained row")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["mismatched"] = [dataclasses.asdict(m) for m in self.mismatched]
        for m in out["mismatched"]:
            m["export_shape"] = list(m["export_shape"])
            m["graph_shape"] = list(m["graph_shape"])
        out["shapes"] = {k: list(v) for k, v in self.shapes.items()}
        return out

def initialiser_report(shapes: Dict[str, Tuple[int, ...]], frozen: Sequence[str] = ()) -> RestoreReport:
    """The report of a model trained from random weights: nothing restored, every variable
    (name -> shape) from its initialiser, trainable unless named in `frozen`."""
    report = RestoreReport(source="none (random init)", method="initialiser")
    report.unexpected = list(shapes)
    report.shapes = {n: tuple(s) for n, s in shapes.items()}
    report.frozen = [n for n in shapes if n in set(frozen)]
    report.trainable = [n for n in shapes if n not in set(frozen)]
    return report

def unique(items) -> list:
    """`items` without repeats, in first-seen order."""
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out

def shape_str(shape) -> str:
    """'[3, ?, 37]' for a shape (None: unknown)."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
