"""What a benchmark run measures: the stages, the learning-curve methods, the targets, and the
profiles (full, --quick, --smoke) with their train sizes, seeds, epochs and model."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple, Union

# run in this order: the learning curve (the heart) before the long objectives stage
STAGES = ("corpus", "corruption", "pretrain", "word_vectors", "learning_curve", "cache", "restore", "objectives")
METHODS = ("random", "pretrained_frozen", "pretrained_finetune", "pretrained_gradual", "word2vec",
           "word2vec_wide", "tfidf_lr")
# gensim skip-gram settings (window, epochs) of the word2vec methods: gensim's defaults as a user
# would run them, and the context objective's defaults (--context-window 15, 20 passes)
WORD2VEC = {"word2vec": (5, 5), "word2vec_wide": (15, 20)}
PRETRAINED_METHODS = ("pretrained_frozen", "pretrained_finetune", "pretrained_gradual")
OBJECTIVE_NAMES = ("sentence", "ranking", "window", "token", "context")
ALL = "all"
DEMO_COPIES = 4  # corruption stage: the demo text is also timed repeated this often
DEFAULT_VARIANT = "default"
TARGETS = {"gain_at_1000": 0.03, "gain_goal": 0.05, "corruption_ratio": 10.0, "sentence_mfu": 0.4,
           "cache_speedup": 2.0, "context_vs_gensim": 3.0, "pretrain_minutes": 2.0}

Size = Union[int, str]


@dataclasses.dataclass(frozen=True)
class Profile:
    """What a run measures; `protocol()` is what rows of one results.json must share."""

    name: str
    sizes: Tuple[Size, ...]  # train sizes of the learning curve ("all": the whole train pool)
    seeds: Tuple[int, ...]  # fine-tuning seeds (subsample + initialisation)
    epochs: int  # fine-tuning epochs (maximum, early stopping on dev)
    patience: int  # epochs without a better dev accuracy before stopping
    large_size: int  # sizes >= this (and "all") use large_epochs / large_patience
    large_epochs: int
    large_patience: int
    stages: Tuple[str, ...]  # stages run when --stages is not given
    pretrain_steps: Optional[int] = None  # None: the shipped default (PretrainConfig() epochs)
    objective_epochs: Optional[float] = None  # single-objective variants (None: default epochs)
    lengths: Tuple[float, ...] = (0.5, 1.0, 3.0)  # pretraining epochs of the default objective
    objective_size: int = 1000  # labels of the objectives stage
    model: Tuple[Tuple[str, Any], ...] = ()  # ModelConfig overrides (default: none)
    corpus_lines: Optional[int] = None  # pretrain on the first N lines of each corpus file
    corruption_sentences: Optional[int] = None  # corruption stage: first N sentences
    corruption_rounds: int = 2  # interleaved rounds (best of)
    corruption_copies: int = 5  # end to end also on the sentence file repeated this often
    corruption_repeats: int = 3  # encoded-ids timing: best of N
    word_vector_passes: Optional[int] = None  # word_vectors stage (None: the default pretraining's passes)
    restore_vocab: int = 200_000  # rows of the synthetic restore export
    restore_dim: int = 300
    restore_repeats: int = 3
    cache_size: Optional[int] = None  # cache stage train size (None: all)
    cache_epochs: int = 3

    def finetune_schedule(self, size: Size, method: str = "", num_layers: int = 2) -> Tuple[int, int]:
        """(epochs, patience) of a fine-tuning run of `method` at `size` labels. Gradual
        unfreezing gets at least one epoch per layer group + 1 (head, layers, embedding), so
        that every layer is trained before it stops."""
        if size == ALL or int(size) >= self.large_size:
            epochs, patience = self.large_epochs, self.large_patience
        else:
            epochs, patience = self.epochs, self.patience
        if method == "pretrained_gradual":
            epochs = max(epochs, num_layers + 3)
        return epochs, patience

    def protocol(self) -> Dict[str, Any]:
        return {"profile": self.name, "epochs": self.epochs, "patience": self.patience,
                "large_size": self.large_size, "large_epochs": self.large_epochs,
                "large_patience": self.large_patience, "pretrain_steps": self.pretrain_steps,
                "objective_epochs": self.objective_epochs, "objective_size": self.objective_size,
                "model": dict(self.model), "corpus_lines": self.corpus_lines}


_ALL_STAGES = STAGES
PROFILES = {
    # single-objective variants pretrain for 2 epochs (about 8 min each instead of 20); the default
    # objectives are also measured at 0.5, 1 and 3 epochs (and the shipped 5 via the default export)
    "full": Profile("full", sizes=(100, 300, 1000, 3000, ALL), seeds=(0, 1, 2), epochs=20, patience=4,
                    large_size=10 ** 9, large_epochs=20, large_patience=4, stages=_ALL_STAGES,
                    objective_epochs=2.0),
    # every size and 3 seeds; <= 1,000 labels exactly as the full run, larger ones capped at 2 epochs
    # (gradual unfreezing: num_layers + 3);
    # the objectives stage (7 pretrainings) only when asked for, then 0.5-epoch objective variants
    "quick": Profile("quick", sizes=(100, 300, 1000, 3000, ALL), seeds=(0, 1, 2), epochs=20, patience=4,
                     large_size=3000, large_epochs=2, large_patience=1,
                     stages=tuple(s for s in _ALL_STAGES if s != "objectives"),
                     objective_epochs=0.5, lengths=(0.5, 3.0), corruption_rounds=1, corruption_copies=3,
                     restore_repeats=2, cache_epochs=2),
    "smoke": Profile("smoke", sizes=(100, 300), seeds=(0,), epochs=1, patience=0, large_size=10 ** 9,
                     large_epochs=1, large_patience=0, stages=_ALL_STAGES, pretrain_steps=30,
                     lengths=(0.5, 3.0), objective_size=300,
                     model=(("embedding_size", 32), ("hidden_size", 32)), corpus_lines=1500,
                     corruption_sentences=3000, corruption_rounds=1, corruption_copies=2,
                     corruption_repeats=1, restore_vocab=20_000, restore_repeats=1, cache_size=300,
                     cache_epochs=1, word_vector_passes=1),
}

