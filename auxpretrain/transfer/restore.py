"""Restore transferable layers into any graph: match by name and shape, report what happened.

The graph can be built by our builders or by the user's own code, as long as the layers carry
the export's names (`embedding/table`, `layer_0/kernel`, ...) or a `scope_map` says where they
went (`{"layer_0/": "my_model/encoder/conv0/"}`, the `init_from_checkpoint` convention).
Restores are strict by default: a variable that was asked for and is missing, or has another
shape or dtype, raises `RestoreError` naming it and both shapes (never a silent partial
restore). `strict=False` restores what matches; either way the
`RestoreReport` lists restored, missing, unexpected, mismatched, frozen and trainable
variables.

When the task's vocabulary differs from the export's, rows of the embedding table are copied
by token; words the export does not know start from the mean pretrained row (plus, if an
`rng` is given, a little Gaussian noise), as ULMFiT initialises new words.

Graph-to-graph transfer with no disk: `values_from_session(sess)` in graph A, then
`restore(values)` in graph B.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from auxpretrain.errors import ExportError, RestoreError
from auxpretrain.export import as_export
from auxpretrain.files import first_line
from auxpretrain.transfer.report import Mismatch, RestoreReport, shape_str, unique
from auxpretrain.model.variables import EMBEDDING, TRANSFERABLE_VARIABLES, layer_of, select_layers, strip_suffix

tf1 = tf.compat.v1

_FORMAT_LAYER = re.compile(r"layer_(\d+)$")


def session_init_fn(fn: Callable, report=None) -> Callable:
    """Wraps `fn(sess)` so it is also a `tf1.train.Scaffold(init_fn=...)`: init_fn(scaffold, sess);
    `init_fn.report` is `report`."""

    def init_fn(*args):
        if len(args) not in (1, 2):
            raise TypeError("init_fn takes (session) or (scaffold, session)")
        fn(args[-1])

    init_fn.report = report
    return init_fn


def order_layers(names) -> List[str]:
    """Layer names of variable names in export order: embedding, layer_0, layer_1, ..., others."""
    layers = unique(layer_of(n) for n in names)

    def key(layer):
        if layer == EMBEDDING:
            return (0, 0, layer)
        m = _FORMAT_LAYER.match(layer)
        if m:
            return (1, int(m.group(1)), layer)
        return (2, 0, layer)

    return sorted(layers, key=key)


def values_from_session(sess, graph=None, collection: str = TRANSFERABLE_VARIABLES
                        ) -> Dict[str, np.ndarray]:
    """Current values of a graph's transferable variables, keyed by name ('layer_0/kernel').

    In-memory transfer: `sess.run` of the collection in graph A; pass the dict to `restore` in
    graph B. No disk.
    """
    graph = graph or sess.graph
    variables = graph.get_collection(collection)
    if not variables:
        raise RestoreError(f"the graph has no variables in collection {collection!r}; "
                           "build the encoder with auxpretrain.build_encoder or add them to it")
    values = sess.run(variables)
    return {strip_suffix(v.name): np.asarray(x) for v, x in zip(variables, values)}


def remap_rows(table: np.ndarray, source_tokens: Sequence[str], target_tokens: Sequence[str],
               rng: Optional[np.random.Generator] = None, noise_scale: float = 0.1,
               ) -> Tuple[np.ndarray, int, int]:
    """Rows of `table` (one per source token) reordered for `target_tokens`.

    Tokens both vocabularies share get their pretrained row; the others get the mean of the
    pretrained rows (padding excluded), plus N(0, (noise_scale * per-column std)^2) noise
    when `rng` is given. Returns (new table [len(target), width], rows copied, rows new).
    """
    table = np.asarray(table)
    index = {t: i for i, t in enumerate(source_tokens)}
    rows = table[1:] if len(table) > 1 else table  # row 0 is padding
    mean = rows.mean(axis=0)
    out = np.empty((len(target_tokens), table.shape[1]), dtype=table.dtype)
    src = np.array([index.get(t, -1) for t in target_tokens], dtype=np.int64)
    found = src >= 0
    out[found] = table[src[found]]
    new = int((~found).sum())
    out[~found] = mean
    if new and rng is not None and noise_scale > 0:
        std = rows.std(axis=0) * noise_scale
        out[~found] += (rng.standard_normal((new, table.shape[1])) * std).astype(table.dtype)
    return out, int(found.sum()), new


def apply_scope_map(name: str, scope_map: Mapping[str, str]) -> str:
    """Longest key of `scope_map` that is the name itself or a prefix of it wins."""
    best = None
    for old in scope_map:
        if name == old or (name.startswith(old) and (old.endswith("/") or old == "")):
            if best is None or len(old) > len(best):
                best = old
    if best is None:
        return name
    return scope_map[best] + name[len(best):]


def _dtype_name(dtype) -> str:
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def _graph_vars(graph) -> Dict[str, object]:
    out = {}
    for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
        out.setdefault(strip_suffix(v.name), v)
    return out


def _is_export(source) -> bool:
    return hasattr(source, "values") and hasattr(source, "variables") and callable(source.values)


def restore(
    source,
    graph=None,
    layers: Union[None, int, str, Sequence[str]] = None,
    scope_map: Optional[Mapping[str, str]] = None,
    strict: bool = True,
    vocab=None,
    rng: Optional[np.random.Generator] = None,
    source_vocab=None,
    noise_scale: float = 0.1,
) -> Tuple[Callable, RestoreReport]:
    """Prepares restoring an export's (or a values dict's) layers into `graph`.

    Creates the restore ops now (call before the graph is finalized) and returns
    `(init_fn, report)`; `init_fn(sess)` assigns the values (run it after the variable
    initialiser, and again whenever the transferred values are wanted back).

    Args:
      source: an `export.Export`, an export directory (loaded with checksum verification),
        or a dict name -> np.ndarray such as `values_from_session` returns.
      graph: target tf.Graph (default: the current default graph).
      layers: which export layers: None (all), n (the first n, embedding first), a regex
        matched in full ("layer_[01]") or a list of names.
      scope_map: {"old/": "new/"} export scope prefix -> graph scope prefix (or a full
        variable name -> graph variable name).
      strict: raise RestoreError for a missing or mismatched variable; False restores what
        matches and lists the rest in the report.
      vocab: the task's Vocabulary (or token list). When it differs from the export's, the
        rows of the embedding table are remapped by token.
      rng: numpy Generator for the small noise added to new words' rows (None: no noise).
      source_vocab: the Vocabulary of a values dict (an Export brings its own).
      noise_scale: noise std as a fraction of the pretrained rows' per-column std.

    Returns:
      (init_fn, RestoreReport).

    Raises:
      RestoreError: strict restore with a missing or mismatched variable, an unknown layer,
        a scope_map key that matches nothing, or a graph that cannot take new ops.
      ExportError: an export that fails verification.
    """
    graph = graph if graph is not None else tf1.get_default_graph()
    if isinstance(source, (str, os.PathLike)):
        source = as_export(source)

    report = RestoreReport()
    if _is_export(source):
        report.source = str(getattr(source, "path", "export"))
        report.verified = True
        source_shapes = {n: (tuple(int(d) for d in s), _dtype_name(dt))
                         for n, (s, dt) in source.variables.items()}
        layer_names = list(source.config.layer_names())
        extra = [n for n in order_layers(source_shapes) if n not in layer_names]
        layer_names += extra
        if source_vocab is None:
            source_vocab = getattr(source, "vocab", None)
        values: Optional[Dict[str, np.ndarray]] = None
        checkpoint_prefix = getattr(source, "checkpoint_prefix", None)
    elif isinstance(source, Mapping):
        values = {strip_suffix(k): np.asarray(v) for k, v in source.items()}
        source_shapes = {n: (tuple(v.shape), v.dtype.name) for n, v in values.items()}
        layer_names = order_layers(values)
        checkpoint_prefix = None
    else:
        raise RestoreError(f"restore: cannot restore from a {type(source).__name__}; pass an "
                           "Export, an export directory or a dict name -> array")
    if not source_shapes:
        raise RestoreError(f"restore: {report.source} has no variables")

    chosen = select_layers(layer_names, layers)
    report.layers = list(chosen)
    chosen_set = set(chosen)
    scope_map = dict(scope_map or {})
    for old in scope_map:
        if not any(apply_scope_map(n, {old: scope_map[old]}) != n for n in source_shapes):
            raise RestoreError(
                f"restore: scope_map key {old!r} matches no export variable; export layers are "
                f"{', '.join(layer_names)} (keys are prefixes like 'layer_0/')")

    gvars = _graph_vars(graph)
    src_tokens = _tokens(source_vocab)
    dst_tokens = _tokens(vocab)
    remap_vocab = dst_tokens is not None and src_tokens is not None and dst_tokens != src_tokens
    if dst_tokens is not None and src_tokens is None:
        raise RestoreError("restore: vocab= needs the export's vocabulary; pass source_vocab= "
                           "with a values dict")

    plan = []  # (export name, graph variable, remap rows?)
    for name in sorted(source_shapes, key=lambda n: (layer_names.index(layer_of(n))
                                                     if layer_of(n) in layer_names else 0)):
        if layer_of(name) not in chosen_set:
            report.not_selected.append(name)
            continue
        shape, dtype = source_shapes[name]
        target = apply_scope_map(name, scope_map)
        var = gvars.get(target)
        if var is None:
            report.missing.append(name)
            continue
        gshape = tuple(var.shape.as_list())
        gdtype = var.dtype.base_dtype.name
        rows = (layer_of(name) == EMBEDDING and src_tokens is not None
                and len(shape) == 2 and shape[0] == len(src_tokens))
        if rows and dst_tokens is not None:
            expect = (len(dst_tokens),) + tuple(shape[1:])
        else:
            expect = tuple(shape)
        if gshape != expect or gdtype != dtype:
            report.mismatched.append(Mismatch(name, target, tuple(shape), gshape, dtype, gdtype))
            continue
        plan.append((name, var, rows and remap_vocab))
        report.mapping[name] = target

    if strict and (report.missing or report.mismatched):
        raise RestoreError(strict_message(report, source_shapes, scope_map, vocab is not None))

    # Graph variables of the asked-for layers (or of the transferable collection) that the
    # export does not have: they keep their initialiser. Optimizer slots are left out.
    targets = set(report.mapping.values())
    prefixes = [apply_scope_map(layer + "/", scope_map) for layer in chosen]
    collection = {strip_suffix(v.name) for v in graph.get_collection(TRANSFERABLE_VARIABLES)}
    all_src_targets = {apply_scope_map(n, scope_map) for n in source_shapes}
    for gname in gvars:
        if gname in targets or gname in all_src_targets:
            continue
        if any(gname.startswith(t + "/") for t in all_src_targets):
            continue  # a slot of a restored variable (".../Adam")
        if gname in collection or any(gname.startswith(p) for p in prefixes):
            report.unexpected.append(gname)

    trainable = {strip_suffix(v.name) for v in graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)}
    report.restored = [report.mapping[name] for name, _, _ in plan]
    for gname in report.restored + report.unexpected:
        report.shapes[gname] = tuple(gvars[gname].shape.as_list())
        (report.trainable if gname in trainable else report.frozen).append(gname)

    if dst_tokens is not None and not remap_vocab and any(
            layer_of(name) == EMBEDDING for name, _, _ in plan):
        report.vocab_rows_copied, report.vocab_rows_new = len(dst_tokens), 0  # same vocabulary
    if not plan:
        report.method = "none"
        return (lambda sess: None), report

    need_values = any(r for _, _, r in plan) or checkpoint_prefix is None
    if graph.finalized:
        raise RestoreError("restore: the graph is finalized; call restore() before "
                           "finalizing it (e.g. before MonitoredTrainingSession)")
    if not need_values:
        return _saver_init(graph, plan, checkpoint_prefix, report)

    if values is None:
        values = source.values()
    feed_values = {}
    for name, var, rows in plan:
        value = values[name]
        if rows:
            value, copied, new = remap_rows(value, src_tokens, dst_tokens, rng, noise_scale)
            report.vocab_rows_copied, report.vocab_rows_new = copied, new
        feed_values[report.mapping[name]] = value
    return _feed_init(graph, plan, feed_values, report)


def _tokens(vocab) -> Optional[List[str]]:
    if vocab is None:
        return None
    tokens = getattr(vocab, "tokens", vocab)
    return list(tokens)


def strict_message(report: RestoreReport, source_shapes, scope_map, has_vocab: bool) -> str:
    problems = len(report.missing) + len(report.mismatched)
    more = f" (and {problems - 1} more)" if problems > 1 else ""
    fix = "transfer fewer layers (layers=/--layers) or allow a partial restore (strict=False/--allow-partial)"
    if report.missing:
        name = report.missing[0]
        shape, dtype = source_shapes[name]
        target = apply_scope_map(name, scope_map)
        looked = "" if target == name else f" (looked for {target})"
        return (f"restore: export variable {name} {shape_str(shape)} {dtype} is missing from "
                f"the graph{looked}{more}; build it under that name, map its scope "
                f"(scope_map), or {fix}")
    m = report.mismatched[0]
    hint = fix
    if layer_of(m.name) == EMBEDDING and not has_vocab:
        hint = "pass the task vocabulary (vocab=) to remap embedding rows by token, or " + fix
    return f"restore: shape/dtype mismatch for {m}{more}; {hint}"


def _saver_init(graph, plan, checkpoint_prefix, report):
    """Restores straight from the checkpoint (no copy through Python)."""
    with graph.as_default():
        saver = tf1.train.Saver(var_list={name: var for name, var, _ in plan},
                                name="auxpretrain_restore", save_relative_paths=True)
    report.method = "saver"

    def init_fn(sess):
        try:
            with sess.graph.as_default():
                saver.restore(sess, checkpoint_prefix)
        except (tf.errors.OpError, ValueError) as e:
            raise ExportError(f"{checkpoint_prefix}: cannot read the checkpoint ({first_line(e)}); "
                              "re-export the model") from None

    return init_fn, report


def _feed_init(graph, plan, feed_values, report):
    """One placeholder + assign op per variable, created once; values fed at init."""
    ops, feed = [], {}
    with graph.as_default(), tf1.name_scope("auxpretrain_restore"):
        for name, var, _ in plan:
            target = report.mapping[name]
            ph = tf1.placeholder(var.dtype.base_dtype, var.shape,
                                 name=re.sub(r"[^A-Za-z0-9_.\-]", "_", target))
            ops.append(tf1.assign(var, ph))
            feed[ph] = feed_values[target]
        group = tf.group(*ops, name="all")
    report.method = "feed"

    def init_fn(sess):
        sess.run(group, feed_dict=feed)

    return init_fn, report


class Assigner:
    """Sets many variables of a built graph from numpy values: placeholders + assign ops created
    once (not one op per call, as `var.load` in a loop would)."""

    def __init__(self, variables, graph=None, name: str = "auxpretrain_assign"):
        graph = graph if graph is not None else tf1.get_default_graph()
        self._vars = list(variables)
        self._placeholders = []
        ops = []
        with graph.as_default(), tf1.name_scope(name):
            for var in self._vars:
                ph = tf1.placeholder(var.dtype.base_dtype, var.shape)
                self._placeholders.append(ph)
                ops.append(tf1.assign(var, ph))
            self._op = tf.group(*ops)
        self.names = [strip_suffix(v.name) for v in self._vars]

    def get(self, sess) -> Dict[str, np.ndarray]:
        """Current values, name -> array."""
        return dict(zip(self.names, sess.run(self._vars)))

    def set(self, sess, values: Mapping[str, np.ndarray]) -> None:
        """Assigns every variable from `values` (keyed by name)."""
        sess.run(self._op, feed_dict={ph: values[n] for ph, n in zip(self._placeholders, self.names)})
