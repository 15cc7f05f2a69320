"""The benchmarks package's pure helpers on fabricated rows: aggregation into the table, the
results.json schema, resuming, the time estimate. Nothing is trained here. Also: every
`python -m benchmarks.X` command answers --help."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks.benchmark import parse_list, parse_sizes
from benchmarks.estimate import finetune_seconds, fmt_minutes, model_scale, pretrain_seconds
from auxpretrain.files import atomic_write_json
from benchmarks.profiles import PROFILES, STAGES
from benchmarks.results import (SCHEMA_VERSION, aggregate, check_results, curve_key, gains, new_results,
                                protocol_diff, upsert)
from benchmarks.tables import format_objectives, format_speed, format_table, headline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("benchmark", "scaling", "corruption_speed", "probe_embeddings", "determinism", "word_vectors", "levers",
            "probe_layers", "context_kernel")


FULL = 9749


def fabricated_rows():
    """3 seeds x sizes 100, 1000, all for random / pretrained_finetune / word2vec / tfidf_lr."""
    base = {"random": 0.60, "pretrained_finetune": 0.62, "word2vec": 0.63, "tfidf_lr": 0.61}
    rows = []
    for method, acc in base.items():
        for size, bump in ((100, 0.0), (1000, 0.05), (FULL, 0.15)):
            for seed, noise in zip((0, 1, 2), (-0.01, 0.0, 0.01)):
                rows.append({"method": method, "train_size": size, "seed": seed,
                             "accuracy": round(acc + bump + noise, 5), "seconds": 1.0})
    return rows


def test_aggregate_mean_std_min_max():
    agg = aggregate(fabricated_rows())
    cell = agg["random"][1000]
    assert cell["n"] == 3
    assert cell["mean"] == pytest.approx(0.65)
    assert cell["std"] == pytest.approx(0.01)  # sample std of -0.01, 0, +0.01
    assert (cell["min"], cell["max"]) == (pytest.approx(0.64), pytest.approx(0.66))
    assert sorted(agg["word2vec"]) == [100, 1000, FULL]


def test_aggregate_skips_missing_accuracy_and_single_seed_has_zero_std():
    rows = [{"method": "random", "train_size": 100, "seed": 0, "accuracy": 0.6},
            {"method": "random", "train_size": 100, "seed": 1, "accuracy": None}]
    cell = aggregate(rows)["random"][100]
    assert cell["n"] == 1 and cell["std"] == 0.0


def test_gains_over_random():
    g = gains(aggregate(fabricated_rows()))
    assert "random" not in g
    assert g["pretrained_finetune"][1000] == pytest.approx(0.02)
    assert g["word2vec"][FULL] == pytest.approx(0.03)


def test_format_table_text_and_markdown():
    rows = fabricated_rows()
    text = format_table(rows, full_size=FULL, majority=0.582)
    lines = text.splitlines()
    assert "majority class 58.2" in lines[0]
    assert f"all ({FULL:,})" in lines[1]
    random_line = next(line for line in lines if line.startswith("random"))
    assert "65.0 ± 1.0" in random_line
    # methods in the fixed order, then the gain block
    order = [line.split()[0] for line in lines[3:7]]
    assert order == ["random", "pretrained_finetune", "word2vec", "tfidf_lr"]
    assert "gain over random" in text
    gain_line = [line for line in lines if line.startswith("pretrained_finetune")][-1]
    assert "+2.0" in gain_line
    md = format_table(rows, full_size=FULL, markdown=True)
    assert "| method | 100 | 1,000 | all (9,749) |" in md
    assert "|---|---:|---:|---:|" in md


def test_format_table_marks_cells_with_fewer_seeds():
    rows = fabricated_rows()[:-1]  # tfidf_lr at all: 2 seeds only
    text = format_table(rows, full_size=FULL)
    tfidf = next(line for line in text.splitlines() if line.startswith("tfidf_lr"))
    assert tfidf.rstrip().endswith("(2)")


def test_results_schema_on_fabricated_rows(tmp_path):
    results = new_results({"profile": "full"})
    results["learning_curve"] = fabricated_rows()
    results["machine"] = {"cores": 2, "peak_gflops": 170.0}
    results["corruption"] = {"pairs_per_s": 5e5, "nlpaug_per_s": 1e4, "ids_pairs_per_s": 3e6,
                             "demo_pairs_per_s": 6.1e4, "ratio_vs_nlpaug": 6.1, "demo_big_pairs_per_s": 8.3e4,
                             "ratio_vs_nlpaug_big": 8.3, "demo_copies": 4}
    results["pretrain"] = {"tokens_per_s": 7e4, "model_gflops": 40.0, "mfu": 0.24, "heldout_accuracy": 0.7,
                           "frequency_probe_accuracy": 0.53, "wall_seconds": 93.0, "sentence_mfu": 0.47,
                           "sentence_gflops": 80.0, "heldout_pairwise_accuracy": 0.85, "peak_gflops": 170.0}
    results["word_vectors"] = {"settings": {"passes": 20, "gensim_workers": 2}, "speed_ratio": 2.5,
                               "ours": {"tokens_per_s": 5e5, "probe": [0.7, 0.7, 0.69]},
                               "gensim": {"tokens_per_s": 2e5, "probe": [0.7, 0.71, 0.7]},
                               "similarity": {"wordsim353": {"pairs": 313, "spearman": [0.49, 0.48]}}}
    results["cache"] = {"cached_seconds_per_epoch": 0.5, "uncached_seconds_per_epoch": 5.0, "speedup": 10.0}
    results["restore"] = {"restore_seconds": 1.2, "saver_seconds": 1.0, "vocab_size": 200000,
                          "embedding_size": 300, "verify_seconds": 0.4}
    assert check_results(results) == []
    path = tmp_path / "results.json"
    atomic_write_json(str(path), results)
    loaded = json.loads(path.read_text())
    assert loaded["schema"] == SCHEMA_VERSION
    assert {"method", "train_size", "seed", "accuracy"} <= set(loaded["learning_curve"][0])
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    speed = format_speed(loaded)
    assert "50.0x" in speed and "MFU 24.0% (whole step)" in speed and "10.0x" in speed
    assert "6.1x (target >= 10x)" in speed and "8.3x" in speed and "47.0% (target >= 40%)" in speed
    assert "2.5x (target >= 3x)" in speed and "0.490" in speed and "+0.010" in speed and "-0.7 points" in speed
    assert "1.6 min wall (target < 2)" in speed
    lines = headline(loaded)
    assert any(line.startswith("context objective alone: 2.5x gensim") for line in lines)
    assert any("6.1x nlpaug (x4 text 8.3x" in line for line in lines)
    assert lines[0].startswith("best pretrained at 1,000 labels: pretrained_finetune")
    assert "+2.0 points" in lines[0] and "behind" in lines[0]


def test_check_results_finds_problems():
    results = new_results({})
    results["learning_curve"] = [{"method": "random", "train_size": 100, "seed": 0, "accuracy": 0.6},
                                 {"method": "random", "train_size": 100, "seed": 0, "accuracy": 0.6},
                                 {"method": "random", "train_size": 300, "seed": 0},
                                 {"method": "random", "train_size": 300, "seed": 1, "accuracy": 61.0}]
    results["cache"] = {"speedup": 3.0}
    problems = check_results(results)
    assert any("duplicate" in p for p in problems)
    assert any("missing accuracy" in p for p in problems)
    assert any("outside [0, 1]" in p for p in problems)
    assert any(p.startswith("cache: missing") for p in problems)
    results["schema"] = 0
    assert any("schema" in p for p in check_results(results))


def test_upsert_and_keys_make_reruns_skip_rows():
    rows = fabricated_rows()
    n = len(rows)
    row = dict(rows[0], accuracy=0.5)
    upsert(rows, row, curve_key)
    assert len(rows) == n and rows[0]["accuracy"] == 0.5
    upsert(rows, dict(row, seed=7), curve_key)
    assert len(rows) == n + 1
    assert curve_key({"method": "random", "train_size": "100", "seed": "2"}) == ("random", 100, 2)


def test_parse_sizes_and_lists():
    assert parse_sizes("100, 300,all,1_000") == [100, 300, "all", 1000]
    with pytest.raises(Exception):
        parse_sizes("100,lots")
    with pytest.raises(Exception):
        parse_sizes("1")
    assert parse_list("corpus,restore", STAGES, "--stages") == ["corpus", "restore"]
    with pytest.raises(Exception):
        parse_list("corpus,train", STAGES, "--stages")


def test_profiles_and_schedules():
    quick, full, smoke = PROFILES["quick"], PROFILES["full"], PROFILES["smoke"]
    for p in (quick, full):
        assert {100, 300, 1000, 3000, "all"} <= set(p.sizes) and len(p.seeds) == 3
        assert p.pretrain_steps is None  # the shipped default pretraining, never shortened
        assert p.finetune_schedule(1000) == (full.epochs, full.patience)  # the heart is not cut
    assert "objectives" not in quick.stages and "objectives" in full.stages
    assert quick.finetune_schedule("all") == (quick.large_epochs, quick.large_patience)
    assert quick.finetune_schedule("all", "pretrained_gradual", num_layers=2)[0] >= 5
    assert smoke.seeds == (0,) and smoke.sizes == (100, 300) and smoke.epochs == 1
    assert protocol_diff(quick.protocol(), quick.protocol()) == []
    assert any(d.startswith("large_epochs") for d in protocol_diff(quick.protocol(), full.protocol()))


def test_cost_model():
    assert model_scale({}) == pytest.approx(1.0)
    assert model_scale({"embedding_size": 32, "hidden_size": 32}) == pytest.approx(0.15)
    slow = finetune_seconds("pretrained_finetune", 9749, 10, 3, 1.0)
    assert slow > finetune_seconds("pretrained_finetune", 1000, 10, 3, 1.0) > \
        finetune_seconds("tfidf_lr", 1000, 10, 3, 1.0)
    assert pretrain_seconds({"context": 1.0}, 1000, 1.0) < pretrain_seconds({"sentence": 1.0}, 1000, 1.0)
    assert fmt_minutes(30) == "30 s" and fmt_minutes(90) == "1.5 min"


def test_objectives_table():
    rows = [{"variant": v, "train_size": 1000, "seed": s, "accuracy": a + 0.01 * s}
            for v, a in (("default", 0.66), ("sentence", 0.64)) for s in range(3)]
    pre = {"default": {"objectives_label": "context+sentence", "steps": 1653, "heldout_pairwise_accuracy": 0.71},
           "sentence": {"objectives_label": "sentence", "steps": 1653}}
    text = format_objectives(rows, pre, {"random": 0.65})
    default_line = next(line for line in text.splitlines() if line.startswith("default"))
    assert "context+sentence" in default_line and "67.0 ± 1.0" in default_line and "+2.0" in default_line


def test_benchmark_imports_without_tensorflow():
    code = ("import sys; import benchmarks.benchmark as m; "
            "m.build_parser().parse_args(['--out', 'x', '--quick']); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command):
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{command}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"usage: python -m benchmarks.{command} ")


def test_context_kernel_benchmark_times_the_three_paths_from_the_same_tables(tmp_path):
    """benchmarks.context_kernel on the tiny corpus: the three paths timed; the op's and the
    kernel's tables the same bytes, the loop's within rounding."""
    from auxpretrain.config import CorpusConfig
    from auxpretrain.pretraining import context_op, kernels
    from benchmarks.context_kernel import measure
    from conftest import PRETRAIN_MODEL, make_tiny_corpus, pretrain_config

    if kernels.compiled is None or context_op.load()[0] is None:
        pytest.skip("the C extension or the context op is not built")
    corpus = str(make_tiny_corpus(tmp_path / "c.txt", lines=200))
    result = measure([corpus], batches=3, rounds=2, config=pretrain_config(objectives={"context": 1.0}),
                     model=PRETRAIN_MODEL, corpus_config=CorpusConfig(min_count=1))
    assert len(result["op"]) == len(result["kernel"]) == len(result["loop"]) == 2
    assert result["ratio"] > 0 and result["kernel_ratio"] > 0
    assert result["max_difference"]["kernel"] == 0.0 and result["max_difference"]["loop"] < 1e-3


def test_determinism_benchmark_times_both_modes(tmp_path):
    """benchmarks.determinism on the tiny corpus: two blocks of each graph, timed, bytes compared."""
    from auxpretrain.config import CorpusConfig
    from benchmarks.determinism import measure
    from conftest import PRETRAIN_MODEL, make_tiny_corpus, pretrain_config

    corpus = str(make_tiny_corpus(tmp_path / "c.txt", lines=200))
    result = measure(corpus, steps=2, rounds=2, config=pretrain_config(max_steps=10 ** 6), model=PRETRAIN_MODEL,
                     corpus_config=CorpusConfig(min_count=1))
    assert len(result["summed"]) == len(result["unsummed"]) == 2 and result["ratio"] > 0
    assert result["same_bytes"]["summed"] is True
