"""`import_encoder`: an export's inference encoder in your graph, under graph.meta's tensor names.

An export is data: by default the encoder is rebuilt from the export's verified model_config by
the package's own builders (`export.add_inference_encoder`, what `write_export` saved as
graph.meta) and its values are restored through `transfer.restore`; nothing graph.meta holds
(ops, saver, initializers) ever runs. `trust_graph_meta=True` is the explicit exception:
`tf1.train.import_meta_graph` of the file itself, for graph.meta files you trust.
"""

from __future__ import annotations

import collections
import contextlib
import os
from typing import Optional

import tensorflow as tf

from auxpretrain.errors import ExportError, RestoreError
from auxpretrain.export import GRAPH_META, TENSORS, add_inference_encoder, as_export
from auxpretrain.files import first_line
from auxpretrain.model import freezing
from auxpretrain.model.variables import TRANSFERABLE_VARIABLES
from auxpretrain.transfer import restore as restore_lib

tf1 = tf.compat.v1

__all__ = ["ImportedEncoder", "import_encoder"]

ImportedEncoder = collections.namedtuple(
    "ImportedEncoder", ["input_ids", "pooled", "sequence", "variables", "saver", "init_fn", "export"])
ImportedEncoder.__doc__ = """What `import_encoder` returns.

input_ids: int32 placeholder [batch, time] (0 = PAD) named `input_ids:0` (under the scope), or
  your own tensor when `input_ids=` was given.
pooled: float32 [batch, pooled_size] tensor `encoder/pooled:0`, the sentence vector.
sequence: float32 [batch, time, width] tensor `encoder/sequence:0`, the top layer's outputs.
variables: the encoder's transferable tf.Variables.
saver: a tf1.train.Saver of those variables under the export's names (built by the package;
  with `trust_graph_meta=True`, the one `import_meta_graph` returned).
init_fn: `init_fn(sess)` (or `(scaffold, sess)`) restores the export's checkpoint values.
export: the verified Export.
"""


def import_encoder(source, graph=None, scope: Optional[str] = None, input_ids=None,
                   trainable: bool = True, trust_graph_meta: bool = False) -> ImportedEncoder:
    """The export's inference encoder in your graph, with graph.meta's named tensors.

    By default nothing of graph.meta is used: the encoder is rebuilt from the export's
    (verified) model_config by the package's own builders, the same graph `write_export`
    saved as graph.meta, and `init_fn` assigns the checkpoint's values through the package's
    restore (by name and shape). An export is data: no op, saver or initializer it carries
    ever runs. Attach your own layers to `pooled` or `sequence` (wrap them in
    `tf.stop_gradient` to keep the encoder fixed); run `init_fn(sess)` after your variable
    initialiser.

    Args:
      source: export directory (checksums verified) or Export.
      graph: target tf.Graph (default: the current default graph).
      scope: tensor and variable names get the prefix "scope/".
      input_ids: optional int32 Tensor [batch, time] of your graph to feed the encoder instead
        of its own placeholder.
      trainable: False creates the encoder's variables outside TRAINABLE_VARIABLES.
      trust_graph_meta: `tf1.train.import_meta_graph` of the file itself, its saver restoring
        the checkpoint: this runs whatever ops the file holds (a crafted graph.meta can read and
        write files, or restore another checkpoint). Only for graph.meta files you trust.

    Returns:
      ImportedEncoder.

    Raises:
      ExportError: an export that fails verification (or, trusting graph.meta, has none).
      RestoreError: the graph is finalized, or already holds the encoder's variable names
        (pass a `scope`).
    """
    export = as_export(source)
    graph = graph if graph is not None else tf1.get_default_graph()
    if graph.finalized:
        raise RestoreError("import_encoder: the graph is finalized; import before finalizing it")
    if trust_graph_meta:
        return _import_trusted_meta_graph(export, graph, scope, input_ids, trainable)
    frozen = export.config.layer_names() if not trainable else ()
    with graph.as_default(), (tf1.variable_scope(scope) if scope else contextlib.nullcontext()):
        try:
            ids, sequence, pooled, by_name = add_inference_encoder(export.config, input_ids, frozen)
        except ValueError as e:  # get_variable: the names exist already
            raise RestoreError(f"import_encoder: {first_line(e, 120)}; pass scope= to build the encoder "
                               "under other names") from None
        prefix = f"{scope}/" if scope else ""
        for key, tensor in (("pooled", pooled), ("sequence", sequence)):
            if tensor.name != prefix + TENSORS[key]:
                raise RestoreError(f"import_encoder: the graph already has a tensor {prefix + TENSORS[key]}; "
                                   "pass scope= to build the encoder under other names")
        restore_fn, _ = restore_lib.restore(export, graph=graph,
                                            scope_map={"": prefix} if prefix else None)
        saver = tf1.train.Saver(var_list=by_name, save_relative_paths=True)
    variables = [by_name[n] for n in export.variables]
    return ImportedEncoder(ids, pooled, sequence, variables, saver, restore_lib.session_init_fn(restore_fn), export)


def _import_trusted_meta_graph(export, graph, scope, input_ids, trainable) -> ImportedEncoder:
    """`import_encoder(..., trust_graph_meta=True)`: import_meta_graph of the file and its saver."""
    meta_path = os.path.join(export.path, GRAPH_META)
    if GRAPH_META not in export.manifest.get("files", {}) or not os.path.isfile(meta_path):
        raise ExportError(f"{export.path}: no {GRAPH_META}; re-export it with this auxpretrain")
    tensors = dict(TENSORS)
    tensors.update(export.manifest.get("tensors") or {})
    input_map = {tensors["input_ids"]: input_ids} if input_ids is not None else None
    before = set(id(v) for v in graph.get_collection(TRANSFERABLE_VARIABLES))
    with graph.as_default():
        try:
            saver = tf1.train.import_meta_graph(meta_path, import_scope=scope, clear_devices=True,
                                                input_map=input_map)
        except (ValueError, KeyError, OSError, tf.errors.OpError) as e:
            raise ExportError(f"{meta_path}: cannot import ({first_line(e)}); re-export it") from None
    prefix = f"{scope}/" if scope else ""
    try:
        pooled = graph.get_tensor_by_name(prefix + tensors["pooled"])
        sequence = graph.get_tensor_by_name(prefix + tensors["sequence"])
        ids = input_ids if input_ids is not None else graph.get_tensor_by_name(prefix + tensors["input_ids"])
    except (KeyError, ValueError) as e:
        raise ExportError(f"{meta_path}: lacks a named tensor ({first_line(e)}); re-export it") from None
    variables = [v for v in graph.get_collection(TRANSFERABLE_VARIABLES)
                 if id(v) not in before and isinstance(v, tf.Variable)]
    if not trainable and variables:
        freezing.remove_from_trainable(variables, graph)
    prefix_ckpt = export.checkpoint_prefix

    def restore_fn(sess):
        try:
            saver.restore(sess, prefix_ckpt)
        except (tf.errors.OpError, ValueError) as e:
            raise ExportError(f"{prefix_ckpt}: cannot restore ({first_line(e)}); re-export it") from None

    return ImportedEncoder(ids, pooled, sequence, variables, saver, restore_lib.session_init_fn(restore_fn), export)
