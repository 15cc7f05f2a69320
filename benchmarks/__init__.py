"""Benchmarks of auxpretrain on real text, run from the repository root:

    python -m benchmarks.benchmark --out DIR [--quick | --smoke]   the README's results (every method)
    python -m benchmarks.scaling --out DIR                        cost against corpus and vocabulary size
    python -m benchmarks.corruption_speed                         corruption speed against nlpaug
    python -m benchmarks.probe_embeddings EXPORT [EXPORT ...]     linear probe of embeddings
    python -m benchmarks.probe_layers EXPORT [EXPORT ...]         linear probe of frozen pooled layers
    python -m benchmarks.levers --export E --corpus F --lever L --objective O   layers retrained
                                                                   above a frozen embedding

`python -m benchmarks.benchmark` is split by job:
  benchmark.py  the command line and main(): runs the stages, writes summary.md and the plots
  profiles.py   stage and method names, targets, the full / --quick / --smoke profiles
  run.py        Bench: one run's settings, DIR, results.json, cached corpora and exports, one row
  stages.py     the stages (corpus, corruption, pretrain, learning_curve, objectives, cache, restore)
  baselines.py  TF-IDF + logistic regression, and the word2vec export
  results.py    the results.json schema, row keys, upsert, aggregation over seeds, gains
  tables.py     the tables (text or Markdown) and the headline against the targets
  plots.py      learning_curve.png and objectives.png
  estimate.py   the cost model and the time estimate printed before a run
  machine.py    the machine's description and a process's memory (/proc)
"""
