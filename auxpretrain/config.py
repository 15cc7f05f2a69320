"""Configuration: the architecture that travels inside an export, and run settings.

Two tiers, as BERT does: `ModelConfig` describes the layers and is written into the
export's manifest so a downstream model rebuilds exactly the same variables; the run
configs (`CorruptionConfig`, `PretrainConfig`, `TransferConfig`) stay with a run.

This module must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Mapping, Type, TypeVar

from auxpretrain.errors import ConfigError

T = TypeVar("T")

ACTIVATIONS = ("tanh", "relu")
POOLINGS = ("mean_max", "max", "mean")
OBJECTIVES = ("sentence", "ranking", "window", "token", "context")
CORRUPTION_OPS = ("replace", "swap")


def _from_dict(cls: Type[T], values: Mapping[str, Any], where: str) -> T:
    """Builds dataclass `cls` from `values`; unknown keys raise ConfigError."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )
    return cls(**dict(values))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the encoder; stored in the export's manifest."""

    vocab_size: int  # rows of the embedding table, PAD and UNK included
    embedding_size: int = 128  # width of a word vector
    num_layers: int = 2  # convolution layers above the embedding (layer_0 ... layer_{n-1})
    hidden_size: int = 256  # output channels of each convolution layer
    kernel_width: int = 3  # words seen by one convolution window
    activation: str = "tanh"  # bounded activations transferred better (shared/FINDINGS.md)
    pooling: str = "mean_max"  # sentence vector = [mean over time ; max over time]
    max_length: int = 64  # tokens kept per sentence; longer sentences are truncated

    def __post_init__(self):
        _check(self.vocab_size >= 3, f"vocab_size must be >= 3, got {self.vocab_size}")
        for name in ("embedding_size", "hidden_size", "kernel_width", "max_length"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.num_layers >= 0, f"num_layers must be >= 0, got {self.num_layers}")
        _check(self.activation in ACTIVATIONS, f"activation must be one of {ACTIVATIONS}")
        _check(self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}")

    @property
    def pooled_size(self) -> int:
        """Width of the pooled sentence vector."""
        width = self.hidden_size if self.num_layers else self.embedding_size
        return 2 * width if self.pooling == "mean_max" else width

    def layer_names(self):
        """Scope names of the transferable layers, bottom first."""
        return ["embedding"] + [f"layer_{i}" for i in range(self.num_layers)]

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "model config") -> "ModelConfig":
        return _from_dict(cls, values, where)


@dataclasses.dataclass(frozen=True)
class CorruptionConfig:
    """How a good sentence becomes a bad one."""

    ops: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"replace": 0.5, "swap": 0.5}
    )  # op name -> weight of drawing it for a sentence
    edits: int = 1  # edits applied to each bad sentence
    alpha: float = 0.75  # replacement words ~ unigram count ** alpha (word2vec's choice)
    band: bool = False  # draw replacements from the original word's frequency band
    num_bands: int = 10  # frequency bands (equal total mass) when band=True
    swap: str = "any"  # "any": two positions anywhere; "adjacent": neighbours only

    def __post_init__(self):
        _check(bool(self.ops), "corruption ops must not be empty")
        for op, weight in self.ops.items():
            _check(op in CORRUPTION_OPS, f"unknown corruption op {op!r}; choose from {', '.join(CORRUPTION_OPS)}")
            _check(weight >= 0, f"weight of op {op!r} must be >= 0")
        _check(sum(self.ops.values()) > 0, "corruption op weights must not all be zero")
        _check(self.edits >= 1, f"edits must be >= 1, got {self.edits}")
        _check(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        _check(self.num_bands >= 1, f"num_bands must be >= 1, got {self.num_bands}")
        _check(self.swap in ("any", "adjacent"), "swap must be 'any' or 'adjacent'")

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ops"] = dict(self.ops)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "corruption config") -> "CorruptionConfig":
        return _from_dict(cls, values, where)


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Run settings of `auxpretrain pretrain` (not part of the export format)."""

    objectives: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"context": 1.0, "sentence": 1.0}
    )  # objective name -> loss weight
    embedding_from_context_only: bool = True  # other objectives do not move the embedding
    default_layers: str = "embedding"  # what `transfer` restores unless told: comma-separated
    #   layer names or "all"; the sentence-objective convs transferred negatively (README Results)
    batch_size: int = 64  # good sentences per batch (each also yields one bad copy)
    epochs: float = 5.0  # passes over the training sentences (word2vec's default)
    max_steps: int = 0  # stop after this many steps (0: epochs decide)
    learning_rate: float = 1e-3  # Adam peak learning rate
    warmup_steps: int = 100  # linear warm-up, then linear decay to 0 at the last step
    clip_norm: float = 5.0  # global gradient norm clip
    context_learning_rate: float = 0.025  # context objective: SGD rate per pair (word2vec's alpha)
    context_passes: int = 4  # context objective: passes over the sentences per epoch (each step
    #   takes its pairs from this many batches, each pass in its own order): word vectors from
    #   ~800k words need ~20 passes, the sentence objective's layers 5 (README Results)
    window: int = 15  # context objective: max distance of a (word, neighbour) pair; wide
    #   windows (most of a sentence) put words of the same sentiment together (README Results)
    negatives: int = 5  # context objective: noise words per real pair
    subsample: float = 1e-4  # context objective: word2vec's frequent-word subsampling (0: off)
    heldout_fraction: float = 0.02  # sentences held out for evaluation
    min_heldout: int = 50  # fewer held-out sentences than this is an error
    eval_every: int = 200  # steps between held-out evaluations
    patience: int = 0  # evaluations without improvement before stopping early (0: never)
    checkpoint_every: int = 200  # steps between checkpoints
    checkpoint_minutes: float = 5.0  # also checkpoint when this much time has passed
    keep_checkpoints: int = 3  # checkpoints kept in OUT/checkpoints
    seed: int = 0  # seeds the corruptor, the batch order and the initialisers

    def __post_init__(self):
        _check(bool(self.objectives), "objectives must not be empty")
        for name, weight in self.objectives.items():
            _check(name in OBJECTIVES, f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
            _check(weight >= 0, f"weight of objective {name!r} must be >= 0")
        for name in ("batch_size", "context_passes", "window", "negatives", "eval_every", "checkpoint_every",
                     "keep_checkpoints", "min_heldout"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(self.epochs > 0 or self.max_steps > 0, "set epochs > 0 or max_steps > 0")
        _check(self.learning_rate > 0, "learning_rate must be > 0")
        _check(0 < self.heldout_fraction < 0.5, "heldout_fraction must be in (0, 0.5)")

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["objectives"] = dict(self.objectives)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "pretrain config") -> "PretrainConfig":
        return _from_dict(cls, values, where)


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
