"""Types and bounds of the JSON files the package reads back: an export's manifest.json, a
saved model's model.json, a transfer checkpoint's state.json and a pretraining run's run.json.

These files are data anyone can edit, so every value is checked before it is used: its type
(an integer is a JSON integer, not 16.0 or true), its bounds, and, for file names, that it
names a file inside the directory. A file that fails is one line naming the file, the field
and what was expected (`check(data, SPEC, path, fix, error)`); nothing downstream sees a
value of the wrong type. Unknown keys are allowed (they are ignored) unless a spec says
otherwise. The architecture itself (`model_config`) is checked by `config.ModelConfig`, the
tokenizer by `data.text.Tokenizer.from_dict`.

This module must not import TensorFlow.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Callable, Mapping, Optional, Sequence

from auxpretrain.errors import AuxPretrainError

Spec = Callable[[Any, str], None]  # check(value, field path): raises _Invalid

MAX_FILES = 10_000  # entries of a "files" object
MAX_NAME = 256  # characters of a name (file, layer, variable, label)
MAX_TEXT = 10_000  # characters of any other string


_MISSING = "present"


class _Invalid(Exception):
    def __init__(self, path: str, expected: str, value: Any):
        super().__init__(path)
        self.path, self.expected, self.value = path, expected, value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(data: Any, spec: Spec, where: str, fix: str, error=AuxPretrainError) -> None:
    """Checks `data` against `spec`; `error` (one line: where, field, expected, got, fix) if not."""
    try:
        spec(data, "")
    except _Invalid as e:
        field = e.path or "the file"
        problem = f"{field} is missing" if e.expected is _MISSING else \
            f"{field} must be {e.expected}, got {_shown(e.value)}"
        raise error(f"{where}: incomplete or edited ({problem}); {fix}") from None


def check_saved(data: Mapping[str, Any], spec: Spec, where: str, version: int, fix: str, error):
    """The checks every saved directory's descriptor (manifest.json, model.json) goes through:
    its format_version is `version`, its file entries name files inside the directory, it
    passes `spec`, and its model_config (with a vocab_size) and tokenizer (the package's
    pattern) build. -> (ModelConfig, Tokenizer); one line `error` naming `where` otherwise."""
    from auxpretrain.config import ModelConfig
    from auxpretrain.data.text import Tokenizer
    from auxpretrain.errors import ConfigError
    from auxpretrain.files import check_file_names

    found = data.get("format_version")
    if found != version or isinstance(found, bool):
        raise error(f"{where}: format_version {found!r:.40} is not supported (this auxpretrain reads {version}); "
                    f"upgrade auxpretrain, or {fix}")
    if isinstance(data.get("files"), dict):
        check_file_names(data["files"], where, error=error)
    check(data, spec, where, fix, error)
    try:
        config = ModelConfig.from_dict(data["model_config"], where="model_config")
        if config.vocab_size is None:  # a config may leave it to the vocabulary; a saved one may not
            raise ConfigError("model_config.vocab_size is missing")
        tokenizer = Tokenizer.from_dict(data["tokenizer"], where="tokenizer")
    except ConfigError as e:  # the config's own checks name the field alone
        text = str(e) if str(e).startswith(("model_config", "tokenizer")) else f"model_config.{e}"
        raise error(f"{where}: incomplete or edited ({text}); {fix}") from None
    return config, tokenizer


def _join(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


# ---------------------------------------------------------------- the specs

def Int(lo: Optional[int] = None, hi: Optional[int] = None) -> Spec:
    def spec(value, path):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or \
                (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f" in {lo}..{hi}" if lo is not None and hi is not None else \
                f" >= {lo}" if lo is not None else f" <= {hi}" if hi is not None else ""
            raise _Invalid(path, f"an integer{bounds}", value)
    return spec


def Num(lo: Optional[float] = None, hi: Optional[float] = None) -> Spec:
    def spec(value, path):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or \
                (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f" in [{lo:g}, {hi:g}]" if lo is not None and hi is not None else \
                f" >= {lo:g}" if lo is not None else ""
            raise _Invalid(path, f"a finite number{bounds}", value)
    return spec


def Str(choices: Sequence[str] = (), pattern: Optional[str] = None, max_length: int = MAX_TEXT,
        what: str = "") -> Spec:
    compiled = re.compile(pattern) if pattern else None

    def spec(value, path):
        if not isinstance(value, str) or len(value) > max_length or (choices and value not in choices) or \
                (compiled is not None and not compiled.fullmatch(value)):
            expected = what or ("one of " + ", ".join(map(repr, choices)) if choices else
                                f"a string of at most {max_length} characters")
            raise _Invalid(path, expected, value)
    return spec


def Bool() -> Spec:
    def spec(value, path):
        if not isinstance(value, bool):
            raise _Invalid(path, "true or false", value)
    return spec


def Anything() -> Spec:
    return lambda value, path: None


def Nullable(inner: Spec) -> Spec:
    def spec(value, path):
        if value is not None:
            inner(value, path)
    return spec


def List(item: Spec, min_items: int = 0, max_items: int = MAX_FILES) -> Spec:
    def spec(value, path):
        if not isinstance(value, list) or not min_items <= len(value) <= max_items:
            raise _Invalid(path, f"a list of {min_items} to {max_items} items", value)
        for i, x in enumerate(value):
            item(x, _join(path, i))
    return spec


def Map(value_spec: Spec, key: Optional[Spec] = None, max_items: int = MAX_FILES) -> Spec:
    """A JSON object of any keys (checked by `key`) whose values all pass `value_spec`."""
    def spec(value, path):
        if not isinstance(value, Mapping) or len(value) > max_items:
            raise _Invalid(path, f"an object of at most {max_items} entries", value)
        for k, v in value.items():
            if key is not None:
                key(k, _join(path, "<key>"))
            value_spec(v, _join(path, k))
    return spec


def Obj(fields: Mapping[str, Spec], required: Sequence[str] = (), extra: bool = True) -> Spec:
    """A JSON object: `fields` checked when present, `required` present, others allowed if `extra`."""
    def spec(value, path):
        if not isinstance(value, Mapping):
            raise _Invalid(path, "a JSON object", value)
        for name in required:
            if name not in value:
                raise _Invalid(_join(path, name), _MISSING, None)
        for name, v in value.items():
            if name in fields:
                fields[name](v, _join(path, name))
            elif not extra:
                raise _Invalid(_join(path, name), f"one of the keys {', '.join(fields)}", name)
    return spec


# ---------------------------------------------------------------- shared pieces

# a file inside the directory: no separator, not '.' or '..', no NUL
FILE_NAME = Str(pattern=r"(?!\.\.?$)[^/\\\x00]+", max_length=MAX_NAME,
                what="a file name inside the directory (no '/', not '..')")
SHA256 = Str(pattern=r"[0-9a-f]{64}", what="a sha256 (64 hex digits)")
NAME = Str(max_length=MAX_NAME)
FILES = Map(SHA256, key=FILE_NAME)
NUMBERS = Map(Nullable(Num()))  # metrics: name -> number (or null)
INFO = Map(Anything())  # an informational object, printed as it is

# ---------------------------------------------------------------- manifest.json (export.py)

MANIFEST = Obj({
    "format_version": Int(),
    "package": Str(),
    "package_version": Str(max_length=100),
    "created": Str(max_length=100),
    "model_config": Map(Anything()),
    "tokenizer": Map(Anything()),
    "collection": NAME,
    "checkpoint": FILE_NAME,
    "tensors": Map(NAME, key=Str(choices=("input_ids", "sequence", "pooled"))),
    "layers": List(Obj({"name": NAME,
                        "variables": List(Obj({"name": NAME, "shape": List(Int(0, 2 ** 31), 0, 8),
                                               "dtype": Str(choices=("float32",))},
                                              required=("name", "shape", "dtype")), 1, 100)},
                       required=("name", "variables")), 1, 1_001),
    "vocab": Obj({"file": Str(choices=("vocab.txt",)), "size": Int(3, 100_000_000), "sha256": SHA256,
                  "pad_id": Int(0, 0), "unk_id": Int(1, 1)}, required=("size", "sha256")),
    "files": FILES,
    "transfer": Obj({"default_layers": List(NAME, 1, 1_001)}),
    "metrics": Obj({"heldout": Nullable(NUMBERS), "frequency_probe": Nullable(NUMBERS),
                    "pooled_features": Nullable(NUMBERS), "steps": Nullable(Int(0)),
                    "tokens_per_second": Nullable(Num()), "model_gflops": Nullable(Num()),
                    "peak_gflops": Nullable(Num()), "mfu": Nullable(Num())}),
    "corpus": INFO, "corruption": INFO, "pretrain": INFO,
}, required=("format_version", "package", "model_config", "tokenizer", "layers", "vocab", "files"))

# ---------------------------------------------------------------- model.json (transfer.saved)

MODEL_JSON = Obj({
    "format_version": Int(), "package": Str(), "kind": Str(),
    "label_names": List(NAME, 2, 1_000_000),
    "model_config": Map(Anything()), "tokenizer": Map(Anything()),
    "checkpoint": FILE_NAME, "files": FILES,
    "task": Nullable(Str()), "pretrained": Nullable(Str()),
    "metrics": Nullable(INFO), "frozen": List(NAME), "frozen_layers": List(NAME),
    "classes": Nullable(List(Anything(), 2, 1_000_000)), "settings": Map(Anything()),
}, required=("format_version", "kind", "label_names", "model_config", "tokenizer", "files"))

# ---------------------------------------------------------------- state.json (transfer.checkpoints)

STATE_JSON = Obj({
    "format_version": Int(), "epoch": Int(0), "step": Int(0), "best_epoch": Int(0),
    "epochs_since_best": Int(0), "best_dev_accuracy": Num(-1.0, 1.0), "finished": Bool(),
    "history": List(Map(Anything()), 0, 1_000_000), "checkpoint": FILE_NAME, "best_checkpoint": FILE_NAME,
    "files": FILES,
}, required=("format_version", "epoch", "step", "best_epoch", "epochs_since_best", "best_dev_accuracy",
             "finished", "history", "checkpoint", "best_checkpoint", "files"))

# ---------------------------------------------------------------- run.json (pretraining.run)

RUN_JSON = Obj({
    "corpus": List(Str()), "model": Map(Anything()), "pretrain": Map(Anything()),
    "corruption": Map(Anything()), "tokenizer": Map(Anything()),
    "files": Map(SHA256, key=Str(choices=("vocab.txt", "counts.txt"))),
}, required=("corpus", "pretrain"))
