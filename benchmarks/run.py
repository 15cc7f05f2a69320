"""Bench: one benchmark run. Its settings (profile and flags), its DIR and results.json, the
artifacts it caches there (corpus files, task, exports per pretraining variant, the word2vec
exports), and the fine-tuning of one learning-curve or objectives row."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from benchmarks.baselines import build_word2vec_export, tfidf_lr
from benchmarks.estimate import pretrain_seconds
from auxpretrain.files import atomic_write_json, atomic_write_text
from benchmarks.profiles import ALL, DEFAULT_VARIANT, METHODS, OBJECTIVE_NAMES, WORD2VEC, Profile, Size
from benchmarks.results import new_results, pretrain_record, pretrain_record_from_manifest, protocol_diff


class Bench:
    """One benchmark run: settings, DIR, results.json, cached artifacts."""

    def __init__(self, args, profile: Profile):
        self.args = args
        self.profile = profile
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.results_path = os.path.join(self.out, "results.json")
        self.log_path = os.path.join(self.out, "benchmark.log")
        self.sizes: List[Size] = list(args.sizes or profile.sizes)
        self.seeds: List[int] = list(args.seeds if args.seeds is not None else profile.seeds)
        self.methods: List[str] = list(args.methods or METHODS)
        # with --pretrained the architecture is the export's (the smoke profile's small model does not apply)
        self.model = {} if args.pretrained else dict(profile.model)
        for flag in ("embedding_size", "hidden_size", "num_layers"):
            if getattr(args, flag) is not None:
                self.model[flag] = getattr(args, flag)
        protocol = dict(profile.protocol(), model=self.model,
                        pretrained=os.path.abspath(args.pretrained) if args.pretrained else None)
        if args.pretrain_steps is not None:
            protocol["pretrain_steps"] = args.pretrain_steps
        self.protocol = protocol
        if os.path.exists(self.results_path):
            with open(self.results_path, encoding="utf-8") as f:
                self.results = json.load(f)
            diff = protocol_diff(self.results.get("protocol", {}), protocol)
            if diff and not args.report:
                raise SystemExit(f"benchmark: error: {self.results_path} was written with other settings "
                                 f"({'; '.join(diff)}); rerun with those settings or use another --out")
        else:
            self.results = new_results(protocol)
        self._task = None
        self._corpus = None
        self._exports: Dict[str, Any] = {}
        self._logf = open(self.log_path, "a", encoding="utf-8")

    # ---- output
    def save(self) -> None:
        atomic_write_json(self.results_path, self.results)

    def log(self, line: str) -> None:
        self._logf.write(line + "\n")
        self._logf.flush()

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.log(line)

    # ---- settings
    @property
    def pretrain_steps(self) -> Optional[int]:
        return self.protocol["pretrain_steps"]

    def pretrain_config(self, objectives: Optional[Mapping[str, float]] = None, epochs: Optional[float] = None):
        """PretrainConfig of a variant; the shipped default when both are None (and no step cap)."""
        from auxpretrain import PretrainConfig

        base = PretrainConfig()
        kw: Dict[str, Any] = {}
        if objectives is not None:
            kw["objectives"] = dict(objectives)
        if epochs is not None:
            kw["epochs"] = float(epochs)
        if self.pretrain_steps:
            steps = max(4, int(round(self.pretrain_steps * (epochs or base.epochs) / base.epochs)))
            kw.update(max_steps=steps, eval_every=max(steps // 2, 1), checkpoint_every=steps,
                      warmup_steps=max(steps // 5, 1))
        return dataclasses.replace(base, **kw)

    def variants(self) -> List[Tuple[str, Dict[str, float], Optional[float]]]:
        """(name, objectives, epochs or None for the default) of the objectives stage."""
        from auxpretrain import PretrainConfig

        base = PretrainConfig()
        out = [(DEFAULT_VARIANT, dict(base.objectives), None)]
        out += [(name, {name: 1.0}, self.profile.objective_epochs) for name in OBJECTIVE_NAMES]
        for e in self.profile.lengths:
            if float(e) != float(base.epochs):
                out.append((f"default_{e:g}ep", dict(base.objectives), float(e)))
        # cheapest pretraining first, so that an interrupted run has measured the most variants
        return sorted(out, key=lambda v: -1.0 if v[0] == DEFAULT_VARIANT else
                      (v[2] or base.epochs) * pretrain_seconds(v[1], 100, 1.0))

    # ---- data
    def corpus(self) -> List[str]:
        """The unlabeled corpus files (built once in DIR/data)."""
        if self._corpus is None:
            from auxpretrain.data.demo import build_demo_corpora

            data = os.path.join(self.out, "data")
            files = [os.path.join(data, "wiki.txt"), os.path.join(data, "reviews.txt")]
            if not all(os.path.exists(f) for f in files):
                t0 = time.perf_counter()
                info = build_demo_corpora(data)
                self.say(f"corpus: wrote {data}/wiki.txt ({info['wiki']['lines']:,} lines, "
                         f"{info['wiki']['words']:,} words) and reviews.txt ({info['reviews']['lines']:,} lines, "
                         f"{info['reviews']['words']:,} words) in {time.perf_counter() - t0:.0f} s")
            n = self.protocol["corpus_lines"]
            if n:
                small = os.path.join(data, f"first{n}")
                os.makedirs(small, exist_ok=True)
                heads = []
                for f in files:
                    head = os.path.join(small, os.path.basename(f))
                    if not os.path.exists(head):
                        with open(f, encoding="utf-8") as src:
                            lines = [line for _, line in zip(range(n), src)]
                        atomic_write_text(head, "".join(lines))
                    heads.append(head)
                files = heads
            self._corpus = files
        return self._corpus

    def task(self):
        if self._task is None:
            from auxpretrain import load_sentiment

            self._task = load_sentiment("package")
        return self._task

    def full_size(self) -> int:
        return len(self.task().train)

    def size_n(self, size: Size) -> int:
        return self.full_size() if size == ALL else int(size)

    # ---- exports
    def default_export(self):
        """The pretrained export: --pretrained, or the shipped default pretrained in DIR."""
        if DEFAULT_VARIANT not in self._exports:
            if self.args.pretrained:
                from auxpretrain import load_export

                export = load_export(self.args.pretrained)
                self._exports[DEFAULT_VARIANT] = export
                if "pretrain" not in self.results:
                    self.results["pretrain"] = pretrain_record_from_manifest(export, source="--pretrained")
                    self.save()
            else:
                self._exports[DEFAULT_VARIANT] = self.variant_export(DEFAULT_VARIANT, None, None)
        return self._exports[DEFAULT_VARIANT]

    def variant_export(self, name: str, objectives, epochs):
        """Pretrains (or resumes, or reuses) DIR/pretrain/NAME and returns its export."""
        from auxpretrain import CorruptionConfig, load_export
        from auxpretrain.pretraining.run import pretrain

        if name == DEFAULT_VARIANT and self.args.pretrained:
            return self.default_export()
        if name in self._exports:
            return self._exports[name]
        run_dir = os.path.join(self.out, "pretrain", name)
        export_dir = os.path.join(run_dir, "export")
        config = self.pretrain_config(objectives, epochs)
        label = "+".join(sorted(config.objectives))
        if os.path.exists(os.path.join(export_dir, "manifest.json")):
            export = load_export(export_dir)
            record = self._pretrain_record(name)
            if record is None:
                record = pretrain_record_from_manifest(export, source=run_dir)
        else:
            self.say(f"pretrain [{name}]: objectives {label}, "
                     + (f"{config.max_steps} steps" if config.max_steps else f"{config.epochs:g} epochs")
                     + f", model {self.model or 'default'} -> {run_dir}")
            t0 = time.perf_counter()
            summary = pretrain(self.corpus(), run_dir, self.model, config, CorruptionConfig(),
                               progress=False, measure_speed=name == DEFAULT_VARIANT,
                               log=lambda line: self.say(f"  pretrain [{name}] {line}"))
            wall = time.perf_counter() - t0
            export = load_export(export_dir)
            record = pretrain_record(summary, wall, source=run_dir)
        record.update(objectives_label=label, config=config.to_dict(), model=export.config.to_dict(),
                      corpus=export.manifest.get("corpus"), export=str(export.path))
        self._set_pretrain_record(name, record)
        self._exports[name] = export
        return export

    def _pretrain_record(self, name):
        if name == DEFAULT_VARIANT:
            return self.results.get("pretrain")
        return self.results.get("objective_pretrain", {}).get(name)

    def _set_pretrain_record(self, name, record):
        if name == DEFAULT_VARIANT:
            self.results["pretrain"] = record
        self.results.setdefault("objective_pretrain", {})[name] = record
        self.save()

    def word2vec_export(self, name: str = "word2vec"):
        if name not in self._exports:
            self._exports[name] = build_word2vec_export(self, self.default_export(), name)
        return self._exports[name]

    def random_config(self):
        """The random-init baseline's architecture: the pretrained export's (vocabulary aside)."""
        from auxpretrain import ModelConfig

        if self.args.pretrained:
            arch = self.default_export().config.to_dict()
            arch["vocab_size"] = 3  # fine_tune sets it from the task's vocabulary
            return ModelConfig.from_dict(arch)
        return ModelConfig(vocab_size=3, **self.model)

    def num_layers(self) -> int:
        if self.args.pretrained:
            return self.default_export().config.num_layers
        return int(self.model.get("num_layers", 2))

    # ---- one fine-tuning row
    def transfer_row(self, method: str, size: Size, seed: int, export=None) -> Dict[str, Any]:
        """Trains and evaluates one (method, size, seed); returns the row."""
        from auxpretrain import TransferConfig, fine_tune

        task = self.task()
        n = self.size_n(size)
        epochs, patience = self.profile.finetune_schedule(size, method, self.num_layers())
        t0 = time.perf_counter()
        if method == "tfidf_lr":
            row = tfidf_lr(task, None if size == ALL else n, seed)
        else:
            kw: Dict[str, Any] = {}
            if method == "random":
                settings = TransferConfig(epochs=epochs, patience=patience, seed=seed)
                kw["model_config"] = self.random_config()
                pretrained = None
            else:
                freeze = "all" if method == "pretrained_frozen" else "none"
                schedule = "gradual" if method == "pretrained_gradual" else "constant"
                settings = TransferConfig(epochs=epochs, patience=patience, seed=seed, freeze=freeze,
                                          schedule=schedule)
                pretrained = export or (self.word2vec_export(method) if method in WORD2VEC
                                        else self.default_export())
            prefix = f"[{method} n={n} seed={seed}] "
            result = fine_tune(task, pretrained, settings=settings, train_size=None if size == ALL else n,
                               log=lambda line: self.log(prefix + line), **kw)
            m = result.metrics
            row = {"accuracy": m["accuracy"], "dev_accuracy": m["dev_accuracy"], "macro_f1": m["macro_f1"],
                   "best_epoch": m["best_epoch"], "epochs_run": len(result.epochs),
                   "cache_used": bool(result.cache.get("used"))}
            members = m.get("ensemble") or {}
            if members:  # the fused accuracy above; each member's alone, for the tables' member rows
                row.update(neural_accuracy=members.get("neural_accuracy"), ngram_accuracy=members.get("ngram_accuracy"),
                           neural_weight=members["neural_weight"])
        row = dict({"method": method, "train_size": n, "seed": seed}, **row)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        return row
