"""Configuration: every setting's default and meaning, defined once.

Two tiers: `ModelConfig` describes the layers and is written into the export's manifest, so a
downstream model rebuilds exactly the same variables; the run configs (`CorpusConfig`,
`CorruptionConfig`, `PretrainConfig`, `TransferConfig`) stay with a run.

Each field carries its help text (`help_of(cls, name)`): the command line builds its flags
and their help from these dataclasses, so a default lives here and nowhere else.

This module must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import typing
from typing import Any, Dict, Mapping, Optional, Tuple, Type, TypeVar, Union

from auxpretrain.errors import ConfigError

T = TypeVar("T")

ACTIVATIONS = ("tanh", "relu")
POOLINGS = ("mean_max", "max", "mean")
POOL_LAYERS = ("top", "all")
OBJECTIVES = ("sentence", "ranking", "window", "token", "context")
CORRUPTION_OPS = ("replace", "swap")
SCHEDULES = ("constant", "gradual")
VOCAB_MODES = ("export", "extend")
ENSEMBLES = ("auto", "ngram", "none")
FREEZE_WORDS = ("none", "all", "embedding", "auto")
DEFAULT_GRADUAL_FACTOR = 2.6  # ULMFiT's discriminative factor between layer groups
# keys that earlier versions wrote into run.json / manifests under another name
RENAMED = {"window": "context_window"}


def _field(default: Any = dataclasses.MISSING, help: str = "", factory=None):
    """A dataclass field with its help text (read by `help_of` and the command line)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def help_of(cls: type, name: str) -> str:
    """The help text of field `name` of config class `cls`."""
    return _fields(cls)[name].metadata.get("help", "")


def default_of(cls: type, name: str) -> Any:
    """The default of field `name` of config class `cls`."""
    f = _fields(cls)[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _fields(cls: type) -> Dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _from_dict(cls: Type[T], values: Mapping[str, Any], where: str) -> T:
    """Builds dataclass `cls` from `values`; unknown keys raise ConfigError."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(values).__name__}")
    known = set(_fields(cls))
    unknown = sorted(set(values) - known)
    if unknown:
        renamed = [f"{k} is now {RENAMED[k]}" for k in unknown if RENAMED.get(k) in known]
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}"
            + (f" ({'; '.join(renamed)})" if renamed else "")
            + f"; known keys: {', '.join(sorted(known))}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**dict(values))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# the largest sizes a ModelConfig may ask for: a file (a manifest, model.json) must not make
# a reader allocate what no model of this package needs (transfer pads every text to max_length)
MODEL_LIMITS = {"vocab_size": 100_000_000, "embedding_size": 65_536, "hidden_size": 65_536,
                "kernel_width": 1_024, "num_layers": 1_000, "max_length": 10_000}


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether `value` has type `hint` (int: not a bool; float: a finite int or float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return any(_type_ok(value, h) for h in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        return isinstance(value, (tuple, list)) and all(_type_ok(v, args[0]) for v in value)
    if origin is not None and issubclass(origin, Mapping):
        return isinstance(value, Mapping) and all(_type_ok(k, args[0]) and _type_ok(v, args[1])
                                                  for k, v in value.items())
    return True


_TYPE_WORDS = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_types(obj: Any) -> None:
    """ConfigError naming the first field of dataclass `obj` whose value has the wrong type
    (the checks of values, e.g. >= 1, come after: they assume the types)."""
    hints = _type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if not _type_ok(value, hint):
            options = typing.get_args(hint) if typing.get_origin(hint) is Union else (hint,)
            words = [_TYPE_WORDS.get(h) or ("none" if h is type(None) else "a list of names"
                                            if typing.get_origin(h) is tuple else "an object of name: number")
                     for h in options]
            raise ConfigError(f"{f.name} must be {' or '.join(words)}, got {value!r:.60}")


def normalize_freeze(spec: Union[str, int, None]) -> str:
    """A freeze spec as a string: none | all | embedding | auto | N (bottom N layers).

    The one check of a freeze spec's form (how many layers N may be is checked against a
    model's layers by `model.variables.parse_freeze`)."""
    if spec is None:
        return "none"
    if isinstance(spec, bool) or not isinstance(spec, (str, int)):
        raise ConfigError(f"freeze={spec!r}: use none, all, embedding, auto or a number of bottom layers")
    text = str(spec).strip().lower()
    if text not in FREEZE_WORDS and not text.isdigit():
        raise ConfigError(f"--freeze {spec!r}: use none, all, embedding, auto or a number of bottom layers")
    return text


class _Config:
    """What every config dataclass has: `to_dict` (JSON-ready: mappings as dicts, tuples as lists)
    and `from_dict` (unknown keys raise ConfigError naming `where`)."""

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, Mapping):
                out[key] = dict(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: Optional[str] = None):
        return _from_dict(cls, values, where or f"{cls.__name__}")


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Config):
    """Architecture of the encoder; stored in the export's manifest."""

    vocab_size: Optional[int] = _field(None, "rows of the embedding table, PAD and UNK included (None: "
                                             "set from the vocabulary when a model is built from texts)")
    embedding_size: int = _field(128, "width of a word vector")
    num_layers: int = _field(2, "convolution layers above the embedding (layer_0 ... layer_{n-1})")
    hidden_size: int = _field(256, "output channels of each convolution layer")
    kernel_width: int = _field(3, "words seen by one convolution window")
    activation: str = _field("tanh", "activation of the convolutions: tanh or relu (bounded "
                                     "activations transferred better)")
    pooling: str = _field("mean_max", "sentence vector: mean_max = [mean over time ; max over time], "
                                      "max or mean")
    max_length: int = _field(64, "pretraining: tokens kept per sentence, longer ones are cut (a downstream "
                                 "task chooses its own: TransferConfig.max_length)")
    pool_layers: str = _field("top", "outputs the sentence vector pools: top (the last layer's) or all (the "
                                     "embedding's and every layer's, each pooled, concatenated)")

    def __post_init__(self):
        _check_types(self)
        _check(self.vocab_size is None or self.vocab_size >= 3, f"vocab_size must be >= 3, got {self.vocab_size}")
        for name in ("embedding_size", "hidden_size", "kernel_width", "max_length"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.num_layers >= 0, f"num_layers must be >= 0, got {self.num_layers}")
        for name, limit in MODEL_LIMITS.items():
            value = getattr(self, name)
            if value is not None and value > limit:
                raise ConfigError(f"{name} must be <= {limit:,}, got {value:,}")
        _check(self.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}")
        _check(self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}")
        _check(self.pool_layers in POOL_LAYERS, f"pool_layers must be one of {POOL_LAYERS}")

    @property
    def pooled_size(self) -> int:
        """Width of the pooled sentence vector."""
        width = self.hidden_size if self.num_layers else self.embedding_size
        if self.pool_layers == "all":
            width = self.embedding_size + self.num_layers * self.hidden_size
        return 2 * width if self.pooling == "mean_max" else width

    def layer_names(self):
        """Scope names of the transferable layers, bottom first."""
        return ["embedding"] + [f"layer_{i}" for i in range(self.num_layers)]

    def differences(self, other: "ModelConfig") -> list:
        """'name mine vs theirs' for every field that differs from `other`."""
        return [f"{f.name} {getattr(self, f.name)} vs {getattr(other, f.name)}" for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)]


@dataclasses.dataclass(frozen=True)
class CorpusConfig(_Config):
    """How a corpus becomes sentences of token ids (`corrupt` and `pretrain`)."""

    text_column: Optional[str] = _field(None, "column holding the text in JSON Lines / CSV / Parquet / "
                                              "hub corpora (default: a column named 'text')")
    lowercase: bool = _field(True, "lowercase every word before counting and encoding")
    min_count: int = _field(2, "words seen fewer times are <unk> (never drawn as replacements)")
    max_vocab: Optional[int] = _field(50_000, "vocabulary size cap, the 2 special tokens included "
                                              "(None: no cap)")
    split_sample_chars: int = _field(2_000_000, "characters of the corpus that NLTK Punkt is trained "
                                                "on when it is trained (--train-splitter, or text that "
                                                "does not look English)")
    train_splitter: bool = _field(False, "train the sentence splitter (Punkt) on the corpus instead of "
                                         "using the English parameters the package ships (text that does "
                                         "not look English is always trained on)")

    def __post_init__(self):
        _check_types(self)
        _check(isinstance(self.min_count, int) and self.min_count >= 1,
               f"--min-count must be >= 1, got {self.min_count}")
        _check(self.max_vocab is None or self.max_vocab >= 3, f"--max-vocab must be >= 3, got {self.max_vocab}")
        _check(self.split_sample_chars >= 1, f"--split-sample must be >= 1, got {self.split_sample_chars}")


@dataclasses.dataclass(frozen=True)
class CorruptionConfig(_Config):
    """How a good sentence becomes a bad one."""

    ops: Mapping[str, float] = _field(factory=lambda: {"replace": 0.5, "swap": 0.5},
                                      help="op name -> weight of drawing it for a sentence")
    edits: int = _field(1, "edits applied to each bad sentence")
    alpha: float = _field(0.75, "replacement words ~ unigram count ** alpha (word2vec's choice)")
    band: bool = _field(False, "draw each replacement from the original word's frequency band")
    num_bands: int = _field(10, "frequency bands (equal total mass) when band is on")
    swap: str = _field("any", "swap two positions anywhere (any) or neighbours only (adjacent)")

    def __post_init__(self):
        _check_types(self)
        _check(bool(self.ops), "corruption ops must not be empty")
        for op, weight in self.ops.items():
            _check(op in CORRUPTION_OPS, f"unknown corruption op {op!r}; choose from {', '.join(CORRUPTION_OPS)}")
            _check(weight >= 0, f"weight of op {op!r} must be >= 0")
        _check(sum(self.ops.values()) > 0, "corruption op weights must not all be zero")
        _check(self.edits >= 1, f"edits must be >= 1, got {self.edits}")
        _check(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        _check(self.num_bands >= 1, f"num_bands must be >= 1, got {self.num_bands}")
        _check(self.swap in ("any", "adjacent"), "swap must be 'any' or 'adjacent'")


@dataclasses.dataclass(frozen=True)
class PretrainConfig(_Config):
    """Run settings of `auxpretrain pretrain` (not part of the export format)."""

    objectives: Mapping[str, float] = _field(
        factory=lambda: {"context": 1.0, "sentence": 1.0},
        help="objective name -> loss weight (sentence, ranking, window, token, context)")
    embedding_from_context_only: bool = _field(True, "other objectives do not move the embedding")
    default_layers: str = _field("embedding", "what `transfer` restores unless told: comma-separated "
                                              "layer names or all (the sentence-objective convolutions "
                                              "transferred negatively, docs/results.md)")
    batch_size: int = _field(64, "good sentences per batch (each also yields one bad copy)")
    epochs: float = _field(1.0, "passes over the training sentences of the sentence-level objectives (the "
                                "context objective makes context_passes per epoch); 1 keeps the default "
                                "run under 2 minutes on 2 cores: 5 scored 0.806 held-out pairwise "
                                "accuracy instead of ~0.72, with the same transfer gain (docs/results.md)")
    max_steps: int = _field(0, "stop after this many steps (0: epochs decide)")
    learning_rate: float = _field(1e-3, "Adam peak learning rate")
    warmup_steps: int = _field(100, "linear warm-up, then linear decay to 0 at the last step")
    clip_norm: float = _field(5.0, "global gradient norm clip")
    context_learning_rate: float = _field(0.025, "context objective: SGD rate per pair (word2vec's alpha)")
    context_passes: int = _field(20, "context objective: passes over the corpus per epoch (each step takes "
                                     "its pairs from this many batches, one SGD update each, each pass in its "
                                     "own order); word vectors from ~800k words need ~20 passes")
    context_window: int = _field(15, "context objective: max distance of a (word, neighbour) pair; wide "
                                     "windows put words of the same sentiment together")
    negatives: int = _field(5, "context objective: noise words per real pair")
    noise_pool: int = _field(40, "context objective: noise words drawn per sentence and shared by its pairs, "
                                 "each pair counting `negatives` of them (the expectation of drawing "
                                 "`negatives` per pair); 40 is about the noise words a window-shared draw "
                                 "(HogBatch) gives a sentence")
    negatives_alpha: float = _field(0.75, "context objective: noise words ~ unigram count ** alpha")
    subsample: float = _field(1e-4, "context objective: word2vec's frequent-word subsampling (0: off)")
    heldout_fraction: float = _field(0.02, "sentences held out for evaluation")
    min_heldout: int = _field(50, "fewer held-out sentences than this is an error")
    eval_every: int = _field(200, "steps between held-out evaluations")
    patience: int = _field(0, "evaluations without improvement before stopping early (0: never)")
    checkpoint_every: int = _field(200, "steps between checkpoints")
    checkpoint_minutes: float = _field(5.0, "also checkpoint when this much time has passed")
    keep_checkpoints: int = _field(3, "checkpoints kept in OUT/checkpoints")
    seed: int = _field(0, "seeds the corruptor, the batch order and the initialisers")
    deterministic: bool = _field(False, "without the compiled context kernel (not built, or "
                                        "AUXPRETRAIN_PURE_PYTHON=1): sum the repeated rows of the context "
                                        "objective's sparse updates before applying them (TensorFlow adds them in "
                                        "a varying order), so that two runs, and a resumed run and an "
                                        "uninterrupted one, end bit-identical, for slower steps "
                                        "(benchmarks.determinism measures how much); the kernel always is")

    def __post_init__(self):
        _check_types(self)
        _check(bool(self.objectives), "objectives must not be empty")
        for name, weight in self.objectives.items():
            _check(name in OBJECTIVES, f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
            _check(weight >= 0, f"weight of objective {name!r} must be >= 0")
        for name in ("batch_size", "context_passes", "context_window", "negatives", "noise_pool", "eval_every",
                     "checkpoint_every", "keep_checkpoints", "min_heldout"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.epochs >= 0, f"--epochs must be >= 0, got {self.epochs:g}")
        _check(self.max_steps >= 0, f"--max-steps must be >= 0 (0: --epochs decides), got {self.max_steps}")
        _check(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        for name in ("warmup_steps", "patience", "context_learning_rate", "subsample", "clip_norm",
                     "checkpoint_minutes"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(self.epochs > 0 or self.max_steps > 0, "set epochs > 0 or max_steps > 0")
        _check(self.learning_rate > 0, "learning_rate must be > 0")
        _check(self.negatives_alpha >= 0, f"negatives_alpha must be >= 0, got {self.negatives_alpha}")
        _check(0 < self.heldout_fraction < 0.5, "heldout_fraction must be in (0, 0.5)")


LayerSpec = Union[None, int, str, Tuple[str, ...]]

# A task's max_length when none is given: this percentile of its training texts' token counts,
# at least TASK_LENGTH_MIN (short-text tasks are never cut) and at most TASK_LENGTH_MAX (memory).
# Convolutions and pooling work at any length, so an export's pretraining max_length plays no part.
TASK_LENGTH_PERCENTILE = 99.0
TASK_LENGTH_MIN = 64
TASK_LENGTH_MAX = 512
TASK_LENGTH_RULE = (f"the {TASK_LENGTH_PERCENTILE:g}th percentile of the training texts' lengths, at least "
                    f"{TASK_LENGTH_MIN} and at most {TASK_LENGTH_MAX}")


def task_max_length(lengths) -> int:
    """The default max_length of a task from its training texts' token counts (a sequence of
    ints): the TASK_LENGTH_PERCENTILE-th percentile rounded up, clipped to
    [TASK_LENGTH_MIN, TASK_LENGTH_MAX]; TASK_LENGTH_MAX when there are no texts (`partial_fit`)."""
    lengths = sorted(int(n) for n in lengths)
    if not lengths:
        return TASK_LENGTH_MAX
    # nearest-rank percentile: the smallest length at least this share of the texts fit in
    rank = max(1, -(-int(TASK_LENGTH_PERCENTILE * len(lengths)) // 100))
    return min(TASK_LENGTH_MAX, max(TASK_LENGTH_MIN, lengths[rank - 1]))


@dataclasses.dataclass(frozen=True)
class TransferConfig(_Config):
    """Run settings of a downstream training (not part of any export)."""

    epochs: int = _field(20, "maximum passes over the training set")
    batch_size: int = _field(32, "examples per step")
    learning_rate: float = _field(1e-3, "Adam (peak) learning rate of the head")
    dropout: float = _field(0.5, "dropout rate on the pooled sentence vector")
    layer_dropout: float = _field(0.0, "dropout rate on each convolution's input (0: off; not below a cache)")
    patience: int = _field(4, "epochs without a better dev accuracy before stopping (0: never); counted once "
                              "the model predicts more than one class on dev, so a run never stops stuck at "
                              "the majority class")
    freeze: str = _field("none", "layers kept fixed: none, all (every restored layer; with the default layers "
                                 "that is every layer: the head alone trains), embedding, N (the bottom N, "
                                 "embedding counted first), auto (try them and keep the best on dev)")
    schedule: str = _field("constant", "constant Adam, or gradual: unfreeze one layer per epoch from the "
                                       "top with discriminative and slanted triangular learning rates (ULMFiT)")
    layer_lr_factor: Optional[float] = _field(None, "learning rate of a layer = lr / factor**(depth from "
                                                    "the top) (None: 1.0, or 2.6 with the gradual schedule)")
    embedding_lr_scale: float = _field(1.0, "the embedding's learning rate = the layers' rate times this")
    cut_frac: float = _field(0.1, "slanted triangular: fraction of steps spent rising")
    ratio: float = _field(32.0, "slanted triangular: peak / lowest learning rate")
    weight_decay: float = _field(0.0, "decoupled (AdamW-style) decay of trained variables (frozen ones "
                                      "never decay)")
    l2_sp: float = _field(0.0, "pull the restored, trained variables toward their pretrained values instead "
                               "of freezing them (L2-SP, decoupled as AdamW's decay: var -= lr * l2_sp * "
                               "(var - pretrained) after each step; 0: off)")
    rescale: float = _field(1.0, "multiply the restored convolution layers that are trained (not the "
                                 "embedding, nothing frozen) by this before training (1: as pretrained)")
    cache: bool = _field(True, "cache the outputs of frozen bottom layers (same result, faster)")
    cache_limit_bytes: int = _field(2 * 1024 ** 3, "above this the cache is skipped (said in the log)")
    bucket: bool = _field(False, "length-sorted bucketing of training batches")
    layers: LayerSpec = _field("default", "export layers to transfer: default (the export's default_layers "
                                          "when fine-tuning with freeze none or embedding and the constant "
                                          "schedule, else all), all or None (every layer), n (the first n, "
                                          "embedding first), a regex, or names")
    allow_partial: bool = _field(False, "restore what matches instead of stopping at a missing or "
                                        "mis-shaped variable")
    vocab: str = _field("export", "export: the export's vocabulary; extend: add the task's new words, "
                                  "initialised at the mean pretrained row")
    noise_scale: float = _field(0.0, "noise on new words' rows (fraction of the rows' std), vocab=extend")
    max_length: Optional[int] = _field(None, "tokens kept per text, longer ones are cut and counted (None: "
                                             f"{TASK_LENGTH_RULE})")
    seed: int = _field(0, "graph seed, initialisers, dropout, shuffling")
    pool_layers: str = _field("auto", "outputs the task model's sentence vector pools: top (the last layer's), "
                                      "all (the embedding's and every layer's, concatenated), or auto: all "
                                      "when every layer of the encoder is frozen (a frozen top layer alone "
                                      "carries little of the task), else the export's (top)")
    ensemble: str = _field("auto", "members besides the neural model: ngram (a TF-IDF word + character "
                                   "n-gram logistic regression, probabilities averaged with a weight chosen "
                                   "on dev), none, or auto (ngram from ensemble_min_examples training "
                                   "examples on, where it was measured to help)")
    ensemble_min_examples: int = _field(500, "ensemble=auto adds the n-gram member from this many training "
                                             "examples on (below, it was measured to hurt: 100 labels -1.0)")
    eval_batch_size: int = _field(256, "examples per evaluation batch")

    def __post_init__(self):
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "freeze", normalize_freeze(self.freeze))
        _check_types(self)
        check = _check
        check(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be >= 1, got {self.epochs!r}")
        check(isinstance(self.batch_size, int) and self.batch_size >= 1,
              f"batch size must be >= 1, got {self.batch_size!r}")
        check(self.learning_rate > 0, f"learning rate must be > 0, got {self.learning_rate}")
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(0 <= self.layer_dropout < 1, f"layer dropout must be in [0, 1), got {self.layer_dropout}")
        check(self.patience >= 0, f"patience must be >= 0, got {self.patience}")
        check(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        check(self.layer_lr_factor is None or self.layer_lr_factor > 0,
              f"layer lr factor must be > 0, got {self.layer_lr_factor}")
        check(0 < self.cut_frac < 1, f"cut_frac must be in (0, 1), got {self.cut_frac}")
        check(self.ratio >= 1, f"ratio must be >= 1, got {self.ratio}")
        check(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        check(self.l2_sp >= 0, f"l2_sp must be >= 0, got {self.l2_sp}")
        check(self.rescale > 0, f"rescale must be > 0, got {self.rescale}")
        check(self.vocab in VOCAB_MODES, f"vocab must be one of {', '.join(VOCAB_MODES)}, got {self.vocab!r}")
        check(self.eval_batch_size >= 1, "eval batch size must be >= 1")
        check(self.pool_layers in ("auto",) + POOL_LAYERS,
              f"pool_layers must be one of auto, {', '.join(POOL_LAYERS)}, got {self.pool_layers!r}")
        check(self.ensemble in ENSEMBLES, f"ensemble must be one of {', '.join(ENSEMBLES)}, got {self.ensemble!r}")
        check(isinstance(self.ensemble_min_examples, int) and self.ensemble_min_examples >= 1,
              f"ensemble_min_examples must be >= 1, got {self.ensemble_min_examples!r}")
        check(self.noise_scale >= 0, "noise scale must be >= 0")
        check(self.max_length is None or 1 <= self.max_length <= MODEL_LIMITS["max_length"],
              f"max length must be an integer in 1..{MODEL_LIMITS['max_length']:,} (or None), got {self.max_length!r}")
        check(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        check(self.cache_limit_bytes >= 0, f"cache_limit_bytes must be >= 0, got {self.cache_limit_bytes}")

    @property
    def lr_factor(self) -> float:
        """The discriminative factor in effect (ULMFiT's 2.6 for the gradual schedule)."""
        if self.layer_lr_factor is not None:
            return float(self.layer_lr_factor)
        return DEFAULT_GRADUAL_FACTOR if self.schedule == "gradual" else 1.0


    def replace(self, where: str = "transfer settings", **overrides) -> "TransferConfig":
        """A copy with `overrides` (field name -> value); an unknown name raises ConfigError."""
        unknown = sorted(set(overrides) - set(_fields(TransferConfig)))
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: "
                              f"{', '.join(_fields(TransferConfig))}")
        return dataclasses.replace(self, **overrides)


def load_json_config(path: str) -> Dict[str, Any]:
    """Reads a JSON object from `path`; bad files raise ConfigError naming the file."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level")
    return data
