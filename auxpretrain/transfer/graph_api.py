"""Graph-level API: for your own tf.compat.v1 graphs, sessions and training loops.

- `restore_pretrained(export, freeze=...)` -> `Restored(init_fn, report, var_list, frozen)`:
  restore by name and shape, the report, and the optimizer's var_list without the frozen
  layers; `init_fn(sess)` (or `init_fn(scaffold, sess)`) runs the restore inside your session,
  as tf-slim's `assign_from_checkpoint_fn`; `assign_from_export_fn` is that exact shape.
- `transfer_between_sessions(sess_a, sess_b)` / `load_values(sess, values)`: graph A -> graph B
  with no disk (`sess.run(collection)` in A, each value loaded into B's variable of the same
  name, shapes checked).
- `import_encoder(export)` (in `auxpretrain.transfer.imported`, re-exported here): the export's
  inference encoder with graph.meta's tensor names, rebuilt by the package's own builders.
- `build_shared_models(...)`: M models in one graph sharing their bottom layers through
  `variable_scope` reuse, each with its own upper layers and head.
- `encode_texts(texts, export)`: token ids with the export's tokenizer and vocabulary.

The model-level API (`TextClassifier`) is in `auxpretrain.transfer.classifier`.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from auxpretrain.config import LayerSpec, ModelConfig
from auxpretrain.data.tasks import check_texts
from auxpretrain.errors import ConfigError, NotFittedError, RestoreError
from auxpretrain.export import Export, as_export
from auxpretrain.model import freezing
from auxpretrain.model.encoder import EncoderOutputs, build_classifier, build_encoder, build_layers, pool
from auxpretrain.model.variables import (HEAD, TRANSFERABLE_VARIABLES, layer_of, parse_freeze, select_layers,
                                         strip_suffix)
from auxpretrain.transfer import restore as restore_lib
from auxpretrain.transfer.imported import ImportedEncoder, import_encoder  # noqa: F401 - re-exported

tf1 = tf.compat.v1


__all__ = [
    "Restored", "restore_pretrained", "assign_from_export_fn", "load_values",
    "transfer_between_sessions", "ImportedEncoder", "import_encoder", "SharedModels",
    "build_shared_models", "encode_texts",
]


# ---------------------------------------------------------------- small helpers


def encode_texts(texts: Sequence[str], source, max_length: Optional[int] = None
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Token ids of `texts` with the tokenizer and vocabulary of an export or a model.

    Args:
      texts: list of str.
      source: anything with `.tokenizer`, `.vocab` and `.config` (an `Export`, a
        `TextClassifier`, a `TaskModel`), or an export directory.
      max_length: tokens kept per text. Default: every token for an export (its pretraining
        max_length does not limit a task: convolutions and pooling work at any length); a
        model's own `config.max_length`, the length it was trained with.

    Returns:
      (ids, lengths): ids int32 [len(texts), T], 0-padded (0 = PAD, 1 = unknown word), where T
      is the longest kept length (at least 1); lengths int32 [len(texts)], the tokens kept per
      text (a text was cut when its token count is above `max_length`).
    """
    if isinstance(source, (str, os.PathLike)):
        source = as_export(source)
    if getattr(source, "config", None) is None:
        raise NotFittedError("encode_texts: the model has no vocabulary yet; fit it first")
    texts = check_texts(texts)
    tokens = source.tokenizer.tokenize_batch(texts)
    if max_length is None and not isinstance(source, Export):
        max_length = source.config.max_length
    return source.vocab.encode_batch(tokens, max_length)


# ---------------------------------------------------------------- restore into your own graph

class Restored(collections.namedtuple("Restored", ["init_fn", "report", "var_list", "frozen"])):
    """What `restore_pretrained` returns.

    init_fn: `init_fn(sess)` assigns the export's values; run it after your variable initialiser.
      Also usable as `tf1.train.Scaffold(init_fn=init_fn)` (it accepts (scaffold, sess)).
    report: `RestoreReport` (restored, missing, unexpected, mismatched, frozen, trainable; print it).
    var_list: list of tf.Variable to pass to `optimizer.minimize(loss, var_list=...)`: the graph's
      TRAINABLE_VARIABLES minus the frozen layers (var_list freezing).
    frozen: the frozen tf.Variables (`frozen_names`: their names, no ':0').
    """

    __slots__ = ()

    @property
    def frozen_names(self) -> List[str]:
        """Names (no ':0') of the frozen variables."""
        return [strip_suffix(v.name) for v in self.frozen]


def _frozen_layer_names(freeze, layer_names: Sequence[str], restored: Sequence[str]) -> List[str]:
    """Layer names from a freeze spec: None | "none" | "all" (every restored layer) | "embedding" |
    N | [names]."""
    if freeze is None or freeze is False:
        return []
    if isinstance(freeze, (list, tuple, set)):
        return select_layers(layer_names, list(freeze))
    if isinstance(freeze, bool):
        return [n for n in layer_names if n in set(restored)]
    spec = str(freeze).strip().lower()
    if spec == "auto":
        raise ConfigError("freeze='auto' tries several freezings and keeps the best on dev data; "
                          "use TextClassifier(...).fit or ap.fine_tune for it, or name the layers")
    return parse_freeze(spec, layer_names, restored=restored)


def restore_pretrained(source, graph=None, layers: LayerSpec = None, freeze=None,
                       scope_map: Optional[Mapping[str, str]] = None, strict: bool = True,
                       vocab=None, rng: Optional[np.random.Generator] = None,
                       remove_frozen: bool = False) -> Restored:
    """Restores an export into your graph and says what to train.

    Call it after building your model (`build_encoder` or your own layers under the export's
    names, or a `scope_map`) and before creating the optimizer.

    Args:
      source: an export directory (checksums verified), an `Export`, or a dict name ->
        np.ndarray (e.g. `restore.values_from_session`).
      graph: your tf.Graph (default: the current default graph).
      layers: export layers to restore: None (all), n (the first n, embedding first), a regex
        ("layer_[01]") or a list of names.
      freeze: layers kept fixed: None/"none", "all" (every restored layer), "embedding", n (the
        bottom n, embedding counted first) or a list of layer names; they must be restored.
      scope_map: {"layer_0/": "my_model/conv0/"}: where the export's scopes live in your graph.
      strict: a missing or mis-shaped variable raises RestoreError (False: restore what matches).
      vocab: your task's Vocabulary (or token list) when it differs from the export's: embedding
        rows are remapped by token.
      rng: numpy Generator for a little noise on new words' rows.
      remove_frozen: also take the frozen variables out of TRAINABLE_VARIABLES (the
        second mechanism), so an optimizer built without var_list leaves them alone too.

    Returns:
      Restored(init_fn, report, var_list, frozen).

    Raises:
      RestoreError: missing/mis-shaped variables (strict), unknown layers, a finalized graph.
      ConfigError: freezing a layer that is not restored, or a variable an optimizer already
        trains (its slot variables or update ops exist: call this before creating the optimizer).
      ExportError: an export that fails verification.
    """
    graph = graph if graph is not None else tf1.get_default_graph()
    if isinstance(source, (str, os.PathLike)):
        source = as_export(source)
    init_fn, report = restore_lib.restore(source, graph=graph, layers=layers, scope_map=scope_map,
                                          strict=strict, vocab=vocab, rng=rng)
    if isinstance(source, Mapping):
        all_layers = restore_lib.order_layers(strip_suffix(k) for k in source)
    else:
        all_layers = list(source.config.layer_names())
    frozen_layers = _frozen_layer_names(freeze, all_layers, report.layers)
    not_restored = [n for n in frozen_layers if n not in report.layers]
    if not_restored:
        raise ConfigError(f"freeze={freeze!r} would freeze {', '.join(not_restored)}, which layers={layers!r} "
                          "does not restore (it would stay random); freeze fewer layers or restore more")
    targets = [target for name, target in report.mapping.items() if layer_of(name) in frozen_layers]
    by_name = {strip_suffix(v.name): v for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
    frozen = [by_name[t] for t in targets if t in by_name]
    for name, trace in freezing.optimizer_traces(graph, frozen).items():
        raise ConfigError(f"restore_pretrained(freeze={freeze!r}): {name} already has an optimizer ({trace}), "
                          "which would keep training it; call restore_pretrained before creating the "
                          "optimizer and pass restored.var_list to it")
    if remove_frozen and frozen:
        freezing.remove_from_trainable(frozen, graph)
    var_list = freezing.trainable_var_list(graph, frozen=frozen)
    report.set_trainable([v.name for v in var_list])
    return Restored(restore_lib.session_init_fn(init_fn, report), report, var_list, frozen)


def assign_from_export_fn(source, layers: LayerSpec = None, scope_map: Optional[Mapping[str, str]] = None,
                          ignore_missing_vars: bool = False, graph=None, vocab=None) -> Callable:
    """tf-slim's `assign_from_checkpoint_fn` for an export: returns `init_fn(sess)`.

    Builds the restore ops now (before the graph is finalized); `init_fn(sess)` or
    `init_fn(scaffold, sess)` restores. `init_fn.report` is the RestoreReport.
    `ignore_missing_vars=True` restores what matches instead of raising RestoreError.
    """
    restored = restore_pretrained(source, graph=graph, layers=layers, scope_map=scope_map,
                                  strict=not ignore_missing_vars, vocab=vocab)
    return restored.init_fn


# ---------------------------------------------------------------- in-memory transfer

def load_values(sess, values: Mapping[str, np.ndarray], layers: LayerSpec = None,
                scope_map: Optional[Mapping[str, str]] = None, strict: bool = True,
                collection: str = TRANSFERABLE_VARIABLES) -> restore_lib.RestoreReport:
    """Loads values into the variables of `sess.graph`'s collection, matched by name and shape.

    Each value goes through the variable's initializer feed (what `Variable.load` does): no op
    is added, so it works on a finalized graph and as often as you like.

    Args:
      sess: a tf1.Session of the target graph, after its variables are initialised.
      values: name ('layer_0/kernel', ':0' optional) -> np.ndarray.
      layers: which layers of `values` to load (None: all; n; regex; names).
      scope_map: {"layer_0/": "other/layer_0/"} name prefix in `values` -> name prefix in the graph.
      strict: a missing or mis-shaped variable raises RestoreError naming it and both shapes.
      collection: the graph collection searched (default TRANSFERABLE_VARIABLES).

    Returns:
      RestoreReport (method "load").
    """
    graph = sess.graph
    values = {strip_suffix(k): np.asarray(v) for k, v in values.items()}
    if not values:
        raise RestoreError("load_values: no values to load")
    targets = {}
    for v in graph.get_collection(collection):
        if hasattr(v, "initializer"):
            targets.setdefault(strip_suffix(v.name), v)
    chosen = set(select_layers(restore_lib.order_layers(values), layers))
    scope_map = dict(scope_map or {})
    report = restore_lib.RestoreReport(source="values", verified=False, method="load")
    report.layers = [n for n in restore_lib.order_layers(values) if n in chosen]
    plan = []
    for name in sorted(values, key=lambda n: report.layers.index(layer_of(n)) if layer_of(n) in chosen else -1):
        if layer_of(name) not in chosen:
            report.not_selected.append(name)
            continue
        target = restore_lib.apply_scope_map(name, scope_map)
        var = targets.get(target)
        if var is None:
            report.missing.append(name)
            continue
        value = values[name]
        gshape = tuple(var.shape.as_list())
        gdtype = var.dtype.base_dtype.name
        if gshape != tuple(value.shape) or gdtype != value.dtype.name:
            report.mismatched.append(restore_lib.Mismatch(name, target, tuple(value.shape), gshape,
                                                          value.dtype.name, gdtype))
            continue
        plan.append((target, var, value))
        report.mapping[name] = target
    if strict and (report.missing or report.mismatched):
        shapes = {n: (tuple(v.shape), v.dtype.name) for n, v in values.items()}
        raise RestoreError(restore_lib.strict_message(report, shapes, scope_map, True))
    loaded_targets = {t for t, _, _ in plan}
    prefixes = [restore_lib.apply_scope_map(layer + "/", scope_map) for layer in chosen]
    report.unexpected = [n for n in targets if n not in loaded_targets and any(n.startswith(p) for p in prefixes)]
    trainable = {strip_suffix(v.name) for v in graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)}
    for target, var, value in plan:
        # Variable.load(value, sess) without its deprecation warning (and without eager checks)
        sess.run(var.initializer, {var.initializer.inputs[1]: value})
        report.restored.append(target)
    for name in report.restored + report.unexpected:
        report.shapes[name] = tuple(targets[name].shape.as_list())
        (report.trainable if name in trainable else report.frozen).append(name)
    return report


def transfer_between_sessions(source_sess, target_sess, layers: LayerSpec = None,
                              scope_map: Optional[Mapping[str, str]] = None, strict: bool = True,
                              collection: str = TRANSFERABLE_VARIABLES) -> restore_lib.RestoreReport:
    """Copies the transferable layers of graph A into graph B, in memory.

    `source_sess.run(collection)` in A, then each value into B's variable of the same name
    (after `scope_map`), shapes checked. Both graphs must be built with the transferable
    collection (`build_encoder` does it) and B's variables initialised.

    Args:
      source_sess: tf1.Session of graph A (trained, or restored from an export).
      target_sess: tf1.Session of graph B.
      layers: None (all), n (first n, embedding first), regex or names.
      scope_map, strict, collection: as in `load_values`.

    Returns:
      RestoreReport of graph B.

    Raises:
      RestoreError: A has no transferable variables; strict and a name is missing from B or
        has another shape there (the message names it and both shapes).
    """
    values = restore_lib.values_from_session(source_sess, collection=collection)
    return load_values(target_sess, values, layers=layers, scope_map=scope_map, strict=strict,
                       collection=collection)


# ---------------------------------------------------------------- shared layers in one graph

@dataclasses.dataclass
class SharedModels:
    """M models of one graph sharing their bottom layers (what `build_shared_models` returns).

    logits: list of M float32 Tensors [batch, num_classes].
    pooled: list of M float32 Tensors [batch, pooled_size], each model's sentence vector.
    shared_layers: layer names built once and reused by every model ("embedding", "layer_0").
    private_layers: layer names each model has its own copy of, under its scope.
    scopes: the models' variable scopes ("model_0", ...): private layers are
      "model_i/layer_j/kernel", heads "model_i/head/kernel".
    encoder: EncoderOutputs of the shared lower layers (the first model's ops).
    """

    logits: List[Any]
    pooled: List[Any]
    shared_layers: List[str]
    private_layers: List[str]
    scopes: List[str]
    encoder: EncoderOutputs
    graph: Any = None

    def restore(self, source, strict: bool = True, vocab=None, rng=None):
        """Restores an export: shared layers by name, every model's private layers through a
        scope_map ("layer_1/" -> "model_i/layer_1/"). Returns (init_fn, RestoreReport)."""
        if isinstance(source, (str, os.PathLike)):
            source = as_export(source)
        fns = []
        init_fn, report = restore_lib.restore(source, graph=self.graph, layers=self.shared_layers,
                                              strict=strict, vocab=vocab, rng=rng)
        fns.append(init_fn)
        for scope in self.scopes if self.private_layers else []:
            scope_map = {f"{layer}/": f"{scope}/{layer}/" for layer in self.private_layers}
            fn, rep = restore_lib.restore(source, graph=self.graph, layers=self.private_layers,
                                          scope_map=scope_map, strict=strict, vocab=vocab, rng=rng)
            fns.append(fn)
            report = report.merge(rep)

        def run_all(sess):
            for fn in fns:
                fn(sess)

        return restore_lib.session_init_fn(run_all, report), report


def build_shared_models(input_ids, config: ModelConfig, num_models: int, num_classes: int,
                        shared_layers: Optional[int] = None, dropout=None, seed: Optional[int] = None,
                        scope_prefix: str = "model_") -> SharedModels:
    """M classifiers in the current graph that share their bottom layers.

    Each model is built by the same code; the first creates the shared layers and the others
    reuse them through `tf1.variable_scope(..., reuse=True)`. Layers above `shared_layers` and
    the heads are private: built under "model_i/". With every layer shared this is one encoder
    with M heads (multi-task or an ensemble); train them with the sum of their losses.

    Args:
      input_ids: int32 Tensor [batch, time], 0 = PAD.
      config: the architecture (an export's `config`).
      num_models: M >= 1.
      num_classes: classes of each head (>= 2).
      shared_layers: how many bottom layers are shared, the embedding counted first
        (1..len(config.layer_names()); default all).
      dropout: optional float32 scalar Tensor, dropout rate on each pooled vector.
      seed: op-level seed; model i's private layers and head use seed + 1000 * i.

    Returns:
      SharedModels (logits float32 [batch, num_classes] per model).
    """
    names = config.layer_names()
    n = len(names) if shared_layers is None else shared_layers
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(names):
        raise ConfigError(f"shared_layers={shared_layers!r}: choose 1..{len(names)} ({', '.join(names)})")
    if not isinstance(num_models, int) or num_models < 1:
        raise ConfigError(f"num_models must be >= 1, got {num_models!r}")
    lower_config = dataclasses.replace(config, num_layers=n - 1)
    logits, pooled, scopes = [], [], []
    encoder = None
    for i in range(num_models):
        # the second and later models reuse the variables the first one created
        with tf1.variable_scope(tf1.get_variable_scope(), reuse=True if i else None):
            lower = build_encoder(input_ids, lower_config, seed=seed)
        encoder = encoder or lower
        model_seed = None if seed is None else seed + 1000 * i
        scope = f"{scope_prefix}{i}"
        with tf1.variable_scope(scope):
            if n < len(names):
                private: dict = {}
                top = build_layers(lower.sequence, lower.mask, config, n - 1, seed=model_seed, outputs=private)
                if config.pool_layers == "all":  # the shared layers' outputs, then this model's own
                    x = tf.concat([pool(lower.layers[m], lower.mask, config.pooling) for m in names[:n]]
                                  + [pool(private[m], lower.mask, config.pooling) for m in names[n:]], -1)
                else:
                    x = pool(top, lower.mask, config.pooling)
            else:
                x = lower.pooled
            logits.append(build_classifier(x, num_classes, dropout=dropout, scope=HEAD, seed=model_seed))
        pooled.append(x)
        scopes.append(scope)
    return SharedModels(logits=logits, pooled=pooled, shared_layers=names[:n], private_layers=names[n:],
                        scopes=scopes, encoder=encoder, graph=input_ids.graph)
