"""Shared fixtures. TensorFlow is imported lazily, so light-module tests stay light."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def tf1():
    """tf.compat.v1 with eager execution off (every test builds in its own tf.Graph())."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    return tf.compat.v1


# ---------------------------------------------------------------- transfer fixtures

def make_toy_task(seed=0, n_train=120, n_dev=60, n_test=60, words=90):
    """A tiny two-class task: a 'good'/'bad' cue word among random filler words."""
    import numpy as np

    from auxpretrain.data.tasks import Split, TaskData

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(words)]

    def split(n):
        texts, labels = [], []
        for _ in range(n):
            y = int(rng.integers(2))
            tokens = list(rng.choice(vocab, size=int(rng.integers(2, 12))))
            tokens.insert(int(rng.integers(len(tokens) + 1)), "good" if y else "bad")
            texts.append(" ".join(tokens))
            labels.append(y)
        return Split(texts, labels)

    return TaskData("toy", ["neg", "pos"], split(n_train), split(n_dev), split(n_test), "toy")


def write_task_tsv(path, split, names=("neg", "pos")):
    """Writes a Split as a task file (text, label columns; label ids as `names`). Returns the path."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for text, label in zip(split.texts, split.labels):
            f.write(f"{text}\t{names[label]}\n")
    return str(path)


@pytest.fixture
def toy_task():
    """TaskData of make_toy_task() (vocabulary of 92 words + 2 specials)."""
    return make_toy_task()


def make_tiny_export(path, task=None, num_layers=2, embedding_size=11, hidden_size=37, seed=1):
    """Writes an export of a randomly initialised tiny encoder whose vocabulary is the toy
    task's training words (min count 1). Returns the Export."""
    import tensorflow as tf

    from auxpretrain.config import ModelConfig
    from auxpretrain.export import write_export
    from auxpretrain.model.encoder import build_encoder
    from auxpretrain.transfer.restore import values_from_session
    from auxpretrain.data.text import Tokenizer
    from auxpretrain.data.vocab import Vocabulary

    tf1 = tf.compat.v1
    task = task or make_toy_task()
    tokenizer = Tokenizer()
    vocab = Vocabulary.build([tokenizer.tokenize(t) for t in task.train.texts], min_count=1)
    config = ModelConfig(vocab_size=len(vocab), embedding_size=embedding_size, num_layers=num_layers,
                         hidden_size=hidden_size, max_length=16)
    graph = tf.Graph()
    with graph.as_default():
        ids = tf1.placeholder(tf.int32, [None, None])
        build_encoder(ids, config, seed=seed)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            values = values_from_session(sess)
    return write_export(str(path), values, config, vocab, tokenizer)


@pytest.fixture(scope="session")
def tiny_export_dir(tmp_path_factory):
    """Path of a tiny export (vocab of the toy task, embedding 11, hidden 37, 2 layers).
    Tests that damage an export must copy it first."""
    path = tmp_path_factory.mktemp("tiny") / "export"
    make_tiny_export(path)
    return str(path)


# ---------------------------------------------------------------- corpus fixtures

_SUBJECTS = ["the cat", "a dog", "my sister", "the old man", "our teacher", "the small bird", "a farmer"]
_VERBS = ["sees", "likes", "finds", "paints", "follows", "carries", "forgets"]
_OBJECTS = ["the red ball", "a green apple", "the river", "an old book", "the tall tree", "a blue boat"]


def make_tiny_corpus(path, lines=60, seed=0):
    """Writes a small generated English-like corpus: one to three sentences a line, and a
    blank line. Returns the path."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i in range(lines):
        sentences = []
        for _ in range(int(rng.integers(1, 4))):
            words = [_SUBJECTS[rng.integers(len(_SUBJECTS))], _VERBS[rng.integers(len(_VERBS))],
                     _OBJECTS[rng.integers(len(_OBJECTS))]]
            sentences.append(" ".join(words).capitalize() + rng.choice([".", ".", "!", "?"]))
        out.append(" ".join(sentences))
        if i == lines // 2:
            out.append("")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return path


@pytest.fixture
def tiny_corpus(tmp_path):
    """Path (str) of a generated corpus of 60 lines (one blank line more), 1-3 sentences each."""
    return str(make_tiny_corpus(tmp_path / "tiny.txt"))


# ---------------------------------------------------------------- pretraining fixtures

PRETRAIN_MODEL = {"embedding_size": 11, "hidden_size": 37, "num_layers": 2, "max_length": 20}


def pretrain_config(**kw):
    """A PretrainConfig for the tiny corpus: 24 steps of 16 sentence pairs, checkpoints every 8."""
    from auxpretrain.config import PretrainConfig

    base = dict(batch_size=16, max_steps=24, eval_every=12, checkpoint_every=8, warmup_steps=4,
                heldout_fraction=0.1, min_heldout=20, learning_rate=5e-3, context_window=2, negatives=3,
                noise_pool=7)
    base.update(kw)
    return PretrainConfig(**base)


def run_pretrain(corpus, out, config=None, **kw):
    """pretrain() of PRETRAIN_MODEL on `corpus` (min count 1) into `out` -> (summary, log lines)."""
    from auxpretrain.config import CorpusConfig, CorruptionConfig
    from auxpretrain.pretraining.run import pretrain

    logs = []
    summary = pretrain([corpus], str(out), PRETRAIN_MODEL, config or pretrain_config(), CorruptionConfig(),
                       corpus_config=CorpusConfig(min_count=1), progress=False, measure_speed=False,
                       log=logs.append, **kw)
    return summary, logs
