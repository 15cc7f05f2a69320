"""A fine-tuned task model for prediction, and its directory on disk.

`save_model(dir, result)` (or `TaskModel.save`) writes model.json, vocab.txt and model.ckpt.*
atomically; `load_model(dir)` verifies every file's sha256 and rebuilds the model in its own
graph: `load_model(dir).predict(texts)`. The same format is written by `auxpretrain transfer
--out` and `TextClassifier.save`.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from auxpretrain import schema
from auxpretrain.config import ModelConfig
from auxpretrain.data.vocab import Vocabulary
from auxpretrain.errors import InputError, RestoreError
from auxpretrain.files import (atomic_write_json, check_listed, committed_dir, first_line,
                               make_temporary_dir, read_json_descriptor, replace_dir, sha256_file, verify_files)
from auxpretrain.model.encoder import build_classifier, build_encoder
from auxpretrain.model.variables import HEAD, layer_of, strip_suffix
from auxpretrain.transfer.layers import checked_layer_values, resolve_layer
from auxpretrain.transfer.ngrams import NGRAM_JSON, NGRAM_WEIGHTS, NgramModel, fuse
from auxpretrain.transfer.restore import Assigner
from auxpretrain.transfer.task_graph import batch_width, length_batches

tf1 = tf.compat.v1


MODEL_FORMAT_VERSION = 1

MODEL_JSON = "model.json"

MODEL_CKPT = "model.ckpt"

MODEL_VOCAB = "vocab.txt"

class TaskModel:
    """A fine-tuned task model for prediction: `predict(texts)` -> label names.

    Built in its own graph from variable values (encoder under the export's names + `head/`).
    With an n-gram member (`ngram`, a transfer.ngrams.NgramModel), the class probabilities are
    `ensemble_weight` * neural + (1 - `ensemble_weight`) * n-gram.
    """

    def __init__(self, config: ModelConfig, values: Mapping[str, np.ndarray], vocab, tokenizer,
                 label_names: Sequence[str], batch_size: int = 256, ngram=None, ensemble_weight: float = 1.0):
        self.config, self.vocab, self.tokenizer = config, vocab, tokenizer
        self.ngram, self.ensemble_weight = ngram, float(ensemble_weight)
        self.label_names = list(label_names)
        self.batch_size = batch_size
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
            enc = build_encoder(self._ids, config)
            logits = build_classifier(enc.pooled, len(self.label_names), scope=HEAD)
            self._probs = tf.nn.softmax(logits, name="probabilities")
            self.variables = {strip_suffix(v.name): v for v in tf1.global_variables()}
            missing = sorted(set(self.variables) - set(values))
            if missing:
                raise RestoreError(f"model values lack {', '.join(missing)}; the saved model is incomplete")
            self._assign = Assigner(list(self.variables.values()), self.graph, name="load")
            self._saver = tf1.train.Saver(var_list=self.variables, save_relative_paths=True)
        self.graph.finalize()
        self.session = tf1.Session(graph=self.graph)
        for name, v in self.variables.items():
            if tuple(np.shape(values[name])) != tuple(v.shape.as_list()):
                raise RestoreError(f"model value {name} has shape {list(np.shape(values[name]))}, "
                                   f"the model expects {v.shape.as_list()}")
        self._assign.set(self.session, values)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), num_classes] class probabilities."""
        tokens = [self.tokenizer.tokenize(t) for t in texts]
        if not tokens:
            return np.zeros((0, len(self.label_names)), np.float32)
        ids, lengths = self.vocab.encode_batch(tokens, self.config.max_length)
        out = np.zeros((len(tokens), len(self.label_names)), np.float32)
        for idx in length_batches(np.asarray(lengths), self.batch_size):
            out[idx] = self.session.run(self._probs, {self._ids: ids[idx, :batch_width(lengths[idx])]})
        if self.ngram is not None:
            out = fuse(out, self.ngram.predict_proba(list(texts)), self.ensemble_weight).astype(np.float32)
        return out

    def predict(self, texts: Sequence[str]) -> List[str]:
        """Label names of `texts`."""
        return [self.label_names[i] for i in self.predict_proba(texts).argmax(-1)]

    def values(self) -> Dict[str, np.ndarray]:
        return self._assign.get(self.session)

    @property
    def layer_names(self) -> List[str]:
        """["embedding", "layer_0", ..., "head"]: what layer indices of get/set_layer_params mean."""
        return self.config.layer_names() + [HEAD]

    def get_layer_params(self, layer: Union[int, str]) -> Dict[str, np.ndarray]:
        """Values of one layer (index into `layer_names`, or a name), skflow style."""
        name = resolve_layer(self.layer_names, layer)
        return {k: v for k, v in self.values().items() if layer_of(k) == name}

    def set_layer_params(self, layer: Union[int, str], values) -> None:
        """Sets one layer's variables: a dict keyed by full ("layer_0/kernel") or short ("kernel")
        names, some or all of them, or a list in `get_layer_params` order."""
        name = resolve_layer(self.layer_names, layer)
        current = self.values()
        layer_values = {k: v for k, v in current.items() if layer_of(k) == name}
        current.update(checked_layer_values(name, layer_values, values))
        self._assign.set(self.session, current)

    def save(self, out_dir: str, extra: Optional[Mapping[str, Any]] = None) -> str:
        """Writes the model directory atomically: model.json, vocab.txt, model.ckpt.*."""
        out_dir = os.path.abspath(out_dir)
        tmp = None
        try:
            tmp = make_temporary_dir(out_dir)
            with self.graph.as_default():
                self._saver.save(self.session, os.path.join(tmp, MODEL_CKPT), write_meta_graph=False,
                                 write_state=False)
            self.vocab.save(os.path.join(tmp, MODEL_VOCAB))
            if self.ngram is not None:
                self.ngram.save(tmp)
            files = {n: sha256_file(os.path.join(tmp, n)) for n in sorted(os.listdir(tmp))}
            meta = {"format_version": MODEL_FORMAT_VERSION, "package": "auxpretrain",
                    "kind": "task_model", "label_names": self.label_names,
                    "model_config": self.config.to_dict(), "tokenizer": self.tokenizer.to_dict(),
                    "checkpoint": MODEL_CKPT, "files": files}
            if self.ngram is not None:
                meta["ensemble"] = {"member": "ngram", "neural_weight": self.ensemble_weight}
            meta.update(dict(extra or {}))
            atomic_write_json(os.path.join(tmp, MODEL_JSON), meta)
            replace_dir(tmp, out_dir, error=InputError)
        except (OSError, tf.errors.OpError) as e:  # a full or read-only disk
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            raise InputError(f"{out_dir}: cannot write the model ({first_line(e, 160)}); free some space or "
                             "choose another --out (a model already there is intact)") from None
        except BaseException:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out_dir

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

def save_model(out_dir: str, result) -> str:
    """Saves a fine-tuned model (see TaskModel.save); the metrics go into model.json too."""
    with result.model() as model:
        return model.save(out_dir, extra={"task": result.task, "pretrained": result.pretrained,
                                          "metrics": result.metrics, "frozen": result.frozen})

def load_model(path: str) -> TaskModel:
    """Opens a directory written by `save_model` / `auxpretrain transfer --out` (model.json's
    values checked, files verified; a directory a crashed save renamed aside is found)."""
    path = committed_dir(os.fspath(path), MODEL_JSON)
    if not os.path.isdir(path):
        raise InputError(f"{path}: no such model directory (written by `auxpretrain transfer --out`)")
    meta_path, meta = read_json_descriptor(path, MODEL_JSON, "a model saved by `auxpretrain "
                                                 "transfer --out`", "save the model again", error=InputError)
    if meta.get("kind") != "task_model":
        raise InputError(f"{meta_path}: not an auxpretrain task model")
    config, tokenizer = schema.check_saved(meta, schema.MODEL_JSON, meta_path, MODEL_FORMAT_VERSION,
                                           "save the model again", InputError)
    files, label_names = meta["files"], list(meta["label_names"])
    checkpoint = meta.get("checkpoint", MODEL_CKPT)
    required = (MODEL_VOCAB, f"{checkpoint}.index")
    if meta.get("ensemble") is not None:  # the n-gram member's files are read too: their sha256 must vouch
        required += (NGRAM_JSON, NGRAM_WEIGHTS)
    check_listed(path, files, required, checkpoint, meta_path, "save the model again", error=InputError)
    verify_files(path, files, "saved model", "save the model again", error=InputError)
    vocab = Vocabulary.load(os.path.join(path, MODEL_VOCAB))
    if len(vocab) != config.vocab_size:
        raise InputError(f"{os.path.join(path, MODEL_VOCAB)}: {len(vocab)} tokens, the model has "
                         f"{config.vocab_size} embedding rows")
    prefix = os.path.join(path, checkpoint)
    try:
        reader = tf1.train.NewCheckpointReader(prefix)
        values = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
    except Exception as e:  # TF raises several error types for a damaged checkpoint
        raise InputError(f"{prefix}: cannot read the checkpoint ({first_line(e)}); save the model again") from None
    ngram, weight = None, 1.0
    if meta.get("ensemble") is not None:
        ensemble = meta["ensemble"]
        weight = ensemble.get("neural_weight") if isinstance(ensemble, dict) else None
        if not isinstance(ensemble, dict) or ensemble.get("member") != "ngram" or isinstance(weight, bool) \
                or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
            raise InputError(f"{meta_path}: ensemble {ensemble!r} is not an n-gram member with a neural "
                             "weight in [0, 1]; save the model again")
        ngram = NgramModel.load(path, tokenizer)
        if ngram.weights.ndim != 2 or ngram.weights.shape[1] != len(label_names):
            raise InputError(f"{os.path.join(path, NGRAM_WEIGHTS)}: weights for {ngram.weights.shape[-1]} classes, "
                             f"the model has {len(label_names)} labels; save the model again")
    return TaskModel(config, values, vocab, tokenizer, label_names, ngram=ngram, ensemble_weight=weight)
