"""The context objective alone against gensim word2vec: same text, same settings, same machine.

    python -m benchmarks.word_vectors --corpus data/wiki.txt data/reviews.txt [--out DIR]
        [--passes 20] [--workers 2] [--seeds 0 1 2] [--json OUT.json] [--no-probe]

Both train skip-gram with negative sampling on the same sentences (our splitter and tokenizer):
window 15, 5 noise words per pair, 128 dimensions, frequent words subsampled at 1e-4, words
seen fewer than 2 times left out, `--passes` passes over the corpus (20: the default
pretraining's context passes), linear learning-rate decay from 0.025. Ours is
`auxpretrain pretrain --objectives context=1 --epochs 1 --context-passes P` (the context
objective alone, as in the default pretraining); gensim is `Word2Vec(sg=1, workers=2)`. One run
of each per seed (`--seeds`, the `seed` of both), in turns: a single run's word-similarity
figures vary by about 0.02 from seed to seed, for both.

Speed: corpus tokens x passes / training seconds, ours over the training sentences and the
training loop alone, gensim over its sentences and `train()` alone (neither counts vocabulary
building or start-up). Quality: Spearman correlation between cosine similarity and human
judgement on WordSim-353 and SimLex-999 (the files the gensim wheel ships in
gensim/test/test_data; the pairs whose words both vectors know), means over the seeds, and
the sentiment linear probe on the first seed's vectors (benchmarks.probe_embeddings: 1,000
labels, probe seeds 0, 1, 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

SETTINGS = {"window": 15, "negatives": 5, "dim": 128, "subsample": 1e-4, "min_count": 2}
WORD_PAIR_FILES = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}

Vectors = Callable[[str], Optional[np.ndarray]]


def word_pairs(name: str) -> List[Tuple[str, str, float]]:
    """(word, word, human score) of a word-pair set the gensim wheel ships (lowercased)."""
    import gensim

    path = os.path.join(os.path.dirname(gensim.__file__), "test", "test_data", WORD_PAIR_FILES[name])
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, score = line.rstrip("\n").split("\t")[:3]
            out.append((a.lower(), b.lower(), float(score)))
    return out


def similarity(vectors: Sequence[Vectors]) -> Dict[str, Dict[str, Any]]:
    """Per word-pair set: each of `vectors`' Spearman correlation over the pairs all of them know."""
    from scipy.stats import spearmanr

    out = {}
    for name in WORD_PAIR_FILES:
        pairs = [(a, b, s) for a, b, s in word_pairs(name)
                 if all(v(a) is not None and v(b) is not None for v in vectors)]
        human = [s for _, _, s in pairs]
        rhos = []
        for v in vectors:
            cosine = [float(v(a) @ v(b) / (np.linalg.norm(v(a)) * np.linalg.norm(v(b)) + 1e-12)) for a, b, _ in pairs]
            rhos.append(round(float(spearmanr(cosine, human).correlation), 4))
        out[name] = {"pairs": len(pairs), "spearman": rhos}
    return out


def corpus_sentences(corpus: Sequence[str]) -> List[List[str]]:
    """The corpus as token lists, split and tokenized as pretraining does."""
    from auxpretrain.data.corpus import iter_sentences, iter_texts
    from auxpretrain.data.text import SentenceSplitter, Tokenizer

    splitter = SentenceSplitter.from_sample(iter_texts(list(corpus)))
    return [s for s in iter_sentences(list(corpus), Tokenizer(), splitter) if s]


def train_gensim(sentences: List[List[str]], passes: int, workers: int, seed: int = 0) -> Dict[str, Any]:
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=SETTINGS["dim"], window=SETTINGS["window"], negative=SETTINGS["negatives"], sg=1,
                     min_count=SETTINGS["min_count"], sample=SETTINGS["subsample"], workers=workers, seed=seed)
    model.build_vocab(sentences)
    tokens = sum(map(len, sentences))
    t0 = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=passes)
    seconds = time.perf_counter() - t0
    wv = model.wv
    return {"vectors": lambda w: wv[w] if w in wv.key_to_index else None, "dim": wv.vector_size,
            "seconds": seconds, "tokens": tokens, "tokens_per_s": passes * tokens / seconds}


def train_ours(corpus: Sequence[str], out_dir: str, passes: int, seed: int = 0) -> Dict[str, Any]:
    from auxpretrain import CorruptionConfig, PretrainConfig, load_export
    from auxpretrain.pretraining.run import pretrain

    config = PretrainConfig(objectives={"context": 1.0}, epochs=1.0, context_passes=passes,
                            context_window=SETTINGS["window"], negatives=SETTINGS["negatives"],
                            subsample=SETTINGS["subsample"], seed=seed)
    summary = pretrain(list(corpus), out_dir, {"embedding_size": SETTINGS["dim"]}, config, CorruptionConfig(),
                       progress=False, measure_speed=False, log=lambda line: None)
    export = load_export(os.path.join(out_dir, "export"))
    table = export.values(["embedding/table"])["embedding/table"]
    index = {token: i for i, token in enumerate(export.vocab.tokens) if i > 1}
    tokens = int(export.manifest["corpus"]["tokens"] * export.manifest["corpus"]["train_sentences"]
                 / export.manifest["corpus"]["sentences"])  # the training sentences' share
    seconds = summary["train_seconds_this_session"]
    return {"vectors": lambda w: table[index[w]] if w in index else None, "dim": table.shape[1],
            "seconds": seconds, "tokens": tokens, "tokens_per_s": passes * tokens / seconds}


def compare(corpus: Sequence[str], workdir: str, passes: int = 20, workers: int = 2, probe: bool = True,
            seeds: Sequence[int] = (0, 1, 2), say: Callable[[str], None] = print) -> Dict[str, Any]:
    """Trains both once per seed (ours first, then gensim, side by side), measures speed and
    quality; a JSON-ready dict. Speed: the median of the seeds' ratios (and each side's median
    tokens/s); quality: the means over the seeds (one seed's word vectors vary by ~0.02 Spearman
    on SimLex-999, for both), each seed's values kept."""
    say(f"word vectors: our context objective, then gensim, {passes} passes, {workers} gensim workers, "
        f"seeds {', '.join(map(str, seeds))}")
    sentences = None
    runs: List[Dict[str, Dict[str, Any]]] = []
    for seed in seeds:
        ours = train_ours(corpus, os.path.join(workdir, f"context_only_seed{seed}"), passes, seed)
        sentences = sentences or corpus_sentences(corpus)
        theirs = train_gensim(sentences, passes, workers, seed)
        say(f"  seed {seed}: ours {ours['tokens_per_s']:,.0f} tokens/s ({ours['seconds']:.1f} s), gensim "
            f"{theirs['tokens_per_s']:,.0f} ({theirs['seconds']:.1f} s): {ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x")
        runs.append({"ours": ours, "gensim": theirs})
    result: Dict[str, Any] = {"settings": dict(SETTINGS, passes=passes, gensim_workers=workers, seeds=list(seeds))}
    for name in ("ours", "gensim"):
        per_seed = [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in run[name].items()
                     if k in ("seconds", "tokens", "tokens_per_s")} for run in runs]
        result[name] = {"tokens_per_s": round(float(np.median([r["tokens_per_s"] for r in per_seed])), 2),
                        "tokens": per_seed[0]["tokens"], "runs": per_seed}
    ratios = [run["ours"]["tokens_per_s"] / run["gensim"]["tokens_per_s"] for run in runs]
    result["speed_ratios"] = [round(r, 3) for r in ratios]
    result["speed_ratio"] = round(float(np.median(ratios)), 2)
    per_run = [similarity([run["ours"]["vectors"], run["gensim"]["vectors"]]) for run in runs]
    result["similarity"] = {}
    for name in per_run[0]:
        rhos = [s[name]["spearman"] for s in per_run]
        result["similarity"][name] = {"pairs": per_run[0][name]["pairs"], "per_seed": rhos,
                                      "spearman": [round(float(np.mean([r[i] for r in rhos])), 4) for i in (0, 1)]}
        mean = result["similarity"][name]["spearman"]
        say(f"  {name} ({per_run[0][name]['pairs']} pairs): Spearman ours {mean[0]:.3f}, gensim {mean[1]:.3f} "
            f"(means of {len(runs)} seeds; ours {', '.join(f'{r[0]:.3f}' for r in rhos)}; "
            f"gensim {', '.join(f'{r[1]:.3f}' for r in rhos)})")
    if probe:
        from auxpretrain.data.text import Tokenizer
        from benchmarks.probe_embeddings import probe as linear_probe, splits

        data = splits(Tokenizer(), 1000)
        for name in ("ours", "gensim"):  # the first seed's vectors
            accuracies = linear_probe(runs[0][name]["vectors"], runs[0][name]["dim"], data)
            result[name]["probe"] = [round(a, 4) for a in accuracies]
            say(f"  probe {name} (seed {seeds[0]}'s vectors): {' / '.join(f'{100 * a:.1f}' for a in accuracies)}, "
                f"mean {100 * float(np.mean(accuracies)):.1f}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.word_vectors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", required=True, metavar="FILE")
    parser.add_argument("--out", metavar="DIR", help="keep our run directory here (default: a temporary one)")
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="gensim worker threads (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one run of each per seed (default 0 1 2)")
    parser.add_argument("--no-probe", action="store_true", help="skip the sentiment linear probe")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        result = compare(args.corpus, args.out, args.passes, args.workers, not args.no_probe, args.seeds)
    else:
        with tempfile.TemporaryDirectory(prefix="word_vectors_") as workdir:
            result = compare(args.corpus, workdir, args.passes, args.workers, not args.no_probe, args.seeds)
    print(f"speed: ours / gensim = {result['speed_ratio']:.2f}x, the median of the seeds' ratios "
          f"({', '.join(f'{r:.2f}' for r in result['speed_ratios'])}; target >= 3x)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
