"""Custom labeled task files: TSV / CSV / JSON Lines with a text and a label column.

`load_task_files(train, dev, test)` -> `TaskData`; labels are mapped to ids in sorted order
(numerically when all are integers); without a dev file a stratified part of train is held
out. Every bad input raises `InputError` with one line naming the file (and line) and the fix.
This module must not import TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import List, Optional, Sequence, Tuple

from auxpretrain.data.tasks import SeedLike, Split, TaskData, hold_out
from auxpretrain.errors import ConfigError, InputError

TASK_FILE_EXTENSIONS = (".tsv", ".csv", ".jsonl")


def _read_text_file(path: str) -> str:
    """The file's text (UTF-8, BOM dropped); InputError if missing, binary, not UTF-8, empty."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file; check the path")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, expected a {'/'.join(TASK_FILE_EXTENSIONS)} file")
    with open(path, "rb") as f:
        data = f.read()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(f"{path}: binary file (NUL byte at offset {nul}); expected UTF-8 text "
                         f"({', '.join(TASK_FILE_EXTENSIONS)})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                         f"re-save the file as UTF-8") from None
    if not text.strip():
        raise InputError(f"{path}: empty file; expected a header line and one example per row")
    return text


def _missing_column(path: str, what: str, column: str, present: Sequence[str], hint: str = "") -> InputError:
    option = "text_column (--text-column)" if what == "text" else "label_column (--label-column)"
    shown = ", ".join(repr(c) for c in present) or "none"
    return InputError(f"{path}: no {what} column {column!r} (columns: {shown}){hint}; "
                      f"pass {option} to choose one")


def _label_string(path: str, line: int, column: str, value) -> str:
    """A label cell as a string: strings and integers as written, integral floats as ints."""
    if isinstance(value, (list, dict)):
        raise InputError(f"{path}:{line}: label {column!r} is a JSON {type(value).__name__}; "
                         f"use a string or an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    label = "" if value is None else str(value).strip()
    if not label:
        raise InputError(f"{path}:{line}: empty label {column!r}; fill it in or delete the row")
    if _INTEGRAL.fullmatch(label):  # "1.0" and "+1" are the label 1, as the JSON number 1.0 is
        label = str(int(label.split(".")[0]))
    return label


_INTEGRAL = re.compile(r"[+-]?\d+(?:\.0*)?")


def _swallowed_row(path: str, rows, header: Sequence[str], label_index: int, labels) -> None:
    """InputError for a quoted field that runs over several lines and holds a line that reads
    as a whole row of its own (its label among the file's labels): an unclosed quote that
    swallowed the next row. `rows`: (first line, last line, fields) of the multi-line rows."""
    known = set(labels)
    for first, last, fields in rows:
        for field in fields:
            for part in field.split("\n") if "\n" in field else ():
                inner = next(csv.reader([part]), [])
                if len(inner) == len(header) and inner[label_index].strip() in known:
                    raise InputError(f"{path}:{first}: a quoted field runs over lines {first}-{last} and holds "
                                     f"what reads as a row of its own ({part.strip()[:40]!r}): an unclosed "
                                     'quote? close it, or write a quote inside a field as ""')


def _text_string(path: str, line: int, column: str, value) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InputError(f"{path}:{line}: text {column!r} is a JSON {type(value).__name__}, "
                         f"expected a string")
    text = " ".join(value.split())
    if not text:
        raise InputError(f"{path}:{line}: empty text {column!r}; fill it in or delete the row")
    return text


def _read_delimited(path: str, text: str, delimiter: str, text_column: str,
                    label_column: str) -> Tuple[List[str], List[str]]:
    # TSV is read without quoting (GLUE style: fields hold quotes but no tabs or newlines).
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    texts, labels = [], []
    try:
        header = [h.strip() for h in next(reader)]
        other = "\t" if delimiter == "," else ","
        hint = ""
        if len(header) == 1 and other in header[0]:
            hint = f" (the header has no {delimiter!r}: wrong extension?)"
        for what, column in (("text", text_column), ("label", label_column)):
            if column not in header:
                raise _missing_column(path, what, column, header, hint)
        ti, li = header.index(text_column), header.index(label_column)
        previous_end = reader.line_num
        multi_line = []
        for row in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != len(header):
                raise InputError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}; "
                                 f"check the separators and quoting of this row")
            if previous_end > line:
                multi_line.append((line, previous_end, row))
            texts.append(_text_string(path, line, text_column, row[ti]))
            labels.append(_label_string(path, line, label_column, row[li]))
    except csv.Error as e:
        raise InputError(f"{path}:{reader.line_num}: unreadable {os.path.splitext(path)[1]} row "
                         f"({e}); check its quoting") from None
    if not texts:
        raise InputError(f"{path}: a header but no rows; add one example per row")
    _swallowed_row(path, multi_line, header, li, labels)
    return texts, labels


def _read_jsonl(path: str, text: str, text_column: str, label_column: str) -> Tuple[List[str], List[str]]:
    texts, labels = [], []
    for line, raw in enumerate(text.split("\n"), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{line}: not valid JSON ({e.msg}, column {e.colno}); "
                             f"expected one JSON object per line") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{line}: a JSON {type(record).__name__}, expected an object "
                             f"with {text_column!r} and {label_column!r}")
        for what, column in (("text", text_column), ("label", label_column)):
            if column not in record:
                if not texts:
                    raise _missing_column(path, what, column, list(record))
                raise InputError(f"{path}:{line}: no {what} field {column!r} "
                                 f"(fields: {', '.join(map(repr, record))}); add it or delete the row")
        texts.append(_text_string(path, line, text_column, record[text_column]))
        labels.append(_label_string(path, line, label_column, record[label_column]))
    if not texts:
        raise InputError(f"{path}: no JSON objects; expected one object per line")
    return texts, labels


def _read_task_file(path: str, text_column: str, label_column: str) -> Tuple[List[str], List[str]]:
    """(texts, label strings) of one TSV / CSV / JSONL file, chosen by extension."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in TASK_FILE_EXTENSIONS:
        raise InputError(f"{path}: unknown extension {ext or '(none)'!r}; "
                         f"use one of {', '.join(TASK_FILE_EXTENSIONS)}")
    text = _read_text_file(path)
    if ext == ".jsonl":
        return _read_jsonl(path, text, text_column, label_column)
    return _read_delimited(path, text, "\t" if ext == ".tsv" else ",", text_column, label_column)


def _sorted_labels(labels) -> List[str]:
    """Label names sorted: numerically when all are integers ("2" < "10"), else as strings."""
    names = set(labels)
    if all(re.fullmatch(r"[+-]?\d+", x) for x in names):
        return sorted(names, key=int)
    return sorted(names)


def _task_name(train: str) -> str:
    stem = os.path.splitext(os.path.basename(train))[0]
    if stem.lower() in ("train", "training"):
        parent = os.path.basename(os.path.dirname(os.path.abspath(train)))
        return parent or stem
    return stem


def load_task_files(train: str, dev: Optional[str] = None, test: Optional[str] = None,
                    text_column: str = "text", label_column: str = "label",
                    dev_fraction: float = 0.1, seed: SeedLike = 0) -> TaskData:
    """A labeled task from files: .tsv (tab-separated, header, no quoting), .csv (header,
    standard quoting) or .jsonl (one object per line), chosen by extension.

    Labels may be strings or integers; `label_names` are the train labels sorted
    (numerically when all are integers, so labels 0..K-1 keep their ids). Without `dev`, a
    stratified `dev_fraction` of train (at least one example, drawn with `seed`) is held out.
    `test` is optional: without it `TaskData.test` is an empty Split (check `len(data.test)`).
    Raises InputError (one line: file, line, what to do) for a missing, empty, binary or
    non-UTF-8 file, an unknown extension, a missing column, an empty text or label, a single
    class in train, or dev/test labels not seen in train.
    """
    if not isinstance(dev_fraction, (int, float)) or not 0 < dev_fraction < 1:
        raise ConfigError(f"dev_fraction must be in (0, 1), got {dev_fraction!r}")
    train_texts, train_labels = _read_task_file(train, text_column, label_column)
    label_names = _sorted_labels(train_labels)
    if len(label_names) < 2:
        raise InputError(f"{train}: only one label ({label_names[0]!r}) in {len(train_texts)} rows; "
                         f"a classifier needs at least two classes")
    ids = {name: i for i, name in enumerate(label_names)}
    train_split = Split(train_texts, [ids[x] for x in train_labels])

    def read_other(path: str) -> Split:
        texts, labels = _read_task_file(path, text_column, label_column)
        unseen = sorted(set(labels) - set(ids))
        if unseen:
            raise InputError(f"{path}: label(s) {', '.join(map(repr, unseen))} not in {train} "
                             f"(train labels: {', '.join(label_names)}); fix them or add "
                             f"examples of them to the train file")
        return Split(texts, [ids[x] for x in labels])

    if dev is not None:
        dev_split = read_other(dev)
    else:
        train_split, dev_split = hold_out(
            train_split, dev_fraction, seed, len(label_names),
            too_few=f"{train}: {len(train_split)} rows are too few to hold out a dev set; "
                    f"add rows or pass a dev file")
    test_split = read_other(test) if test is not None else Split.empty()
    parts = [f"train={train}", f"dev={dev if dev is not None else f'{dev_fraction:g} of train'}"]
    if test is not None:
        parts.append(f"test={test}")
    return TaskData(name=_task_name(train), label_names=label_names, train=train_split,
                    dev=dev_split, test=test_split, source="files:" + ",".join(parts))
