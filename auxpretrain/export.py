"""The transferable collection on disk: `OUT/export/`, the product's main artifact.

Layout (every file's sha256 is in the manifest):
  manifest.json                    format version, ModelConfig, tokenizer, layers and their
                                   variables, vocabulary size + sha256, metrics, provenance
  vocab.txt                        one token a line; line i is embedding row i
  model.ckpt.index / .data-*       a Saver checkpoint of exactly the transferable variables
  graph.meta                       a MetaGraphDef of the inference encoder (input_ids ->
                                   pooled), holding the transferable collection, for import_meta_graph

Written atomically: everything goes to a temporary sibling directory which is renamed into
place only when complete, so a crash or a full disk never leaves a half export and the
previous export stays intact until the new one is whole (a crash between the swap's two
renames leaves the previous export aside, where `load_export` finds it and the next write
puts it back: files.recover_dir).

Loading trusts nothing in the directory: every manifest value is checked against
`schema.MANIFEST` and `ModelConfig` (types and bounds), file names must stay inside the
directory, every file must match its sha256, the tokenizer must be the package's pattern, and
graph.meta is never read (`transfer.import_encoder` rebuilds the encoder with the package's
own builders unless told to trust the file).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from auxpretrain import schema
from auxpretrain.config import ModelConfig
from auxpretrain.errors import ExportError
from auxpretrain.files import (atomic_write_json, check_listed, committed_dir, first_line, fsync_dir,
                               make_temporary_dir, read_json_descriptor, replace_dir, sha256_file, verify_files)
from auxpretrain.model.variables import TRANSFERABLE_VARIABLES, layer_of, strip_suffix

FORMAT_VERSION = 1
CHECKPOINT_NAME = "model.ckpt"
MANIFEST = "manifest.json"
VOCAB = "vocab.txt"
GRAPH_META = "graph.meta"
# names of the tensors of graph.meta, for import_meta_graph users
TENSORS = {
    "input_ids": "input_ids:0",  # int32 [batch, time], 0 = padding
    "sequence": "encoder/sequence:0",  # float32 [batch, time, width], top layer output
    "pooled": "encoder/pooled:0",  # float32 [batch, pooled_size], sentence vector
}


@dataclasses.dataclass
class Export:
    """A verified export directory, ready to restore from."""

    path: str
    manifest: Dict[str, Any]
    config: ModelConfig
    vocab: Any  # auxpretrain.vocab.Vocabulary
    tokenizer: Any  # auxpretrain.text.Tokenizer
    checkpoint_prefix: str
    variables: Dict[str, Tuple[Tuple[int, ...], str]]  # name -> (shape, dtype), export order

    @property
    def layer_names(self) -> List[str]:
        return [layer["name"] for layer in self.manifest["layers"]]

    def values(self, names=None) -> Dict[str, np.ndarray]:
        """Reads variable values from the checkpoint: name (no ':0') -> ndarray."""
        import tensorflow as tf

        try:
            reader = tf.compat.v1.train.NewCheckpointReader(self.checkpoint_prefix)
            return {n: reader.get_tensor(n) for n in (names or self.variables)}
        except Exception as e:  # a corrupted checkpoint surfaces here as a TF error
            raise ExportError(f"{self.path}: cannot read the checkpoint ({first_line(e)}); "
                              "re-export or re-download it") from None


def _layers_manifest(variables: Mapping[str, Tuple[Tuple[int, ...], str]], config: ModelConfig):
    layers = []
    for layer in config.layer_names():
        layers.append({
            "name": layer,
            "variables": [{"name": n, "shape": list(shape), "dtype": dtype}
                          for n, (shape, dtype) in variables.items() if layer_of(n) == layer],
        })
    return layers


def add_inference_encoder(config: ModelConfig, input_ids=None, frozen=()):
    """Builds graph.meta's inference encoder in the current graph and name scope, with the
    package's builders: a placeholder `input_ids` (unless a tensor is given), the encoder and
    its named outputs `encoder/sequence` and `encoder/pooled` (`TENSORS`, under the current
    scope). `frozen`: layer names created not trainable.

    Returns (input_ids, sequence, pooled, variables): variables maps checkpoint names
    ('layer_0/kernel', without the scope) to the new tf.Variables.
    """
    import tensorflow as tf

    from auxpretrain.model.encoder import build_encoder  # TensorFlow: only when it is needed

    tf1 = tf.compat.v1
    graph = tf1.get_default_graph()
    before = set(id(v) for v in graph.get_collection(TRANSFERABLE_VARIABLES))
    scope = graph.get_name_scope()
    if input_ids is None:
        input_ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
    outputs = build_encoder(input_ids, config, frozen=frozen)
    with tf1.name_scope(f"{scope}/encoder/" if scope else "encoder/"):
        sequence = tf.identity(outputs.sequence, name="sequence")
        pooled = tf.identity(outputs.pooled, name="pooled")
    prefix = tf1.get_variable_scope().name
    prefix = f"{prefix}/" if prefix else ""
    variables = {strip_suffix(v.name)[len(prefix):]: v for v in graph.get_collection(TRANSFERABLE_VARIABLES)
                 if id(v) not in before}
    return input_ids, sequence, pooled, variables


def build_inference_graph(config: ModelConfig):
    """Builds the clean inference encoder of graph.meta in a new graph.

    Returns (graph, saver, variables): variables maps checkpoint names to tf.Variables.
    """
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        _, _, _, variables = add_inference_encoder(config)
        saver = tf1.train.Saver(var_list=variables, max_to_keep=None, save_relative_paths=True)
    return graph, saver, variables


def write_export(out_dir: str, values: Mapping[str, np.ndarray], config: ModelConfig, vocab,
                 tokenizer, extra: Optional[Mapping[str, Any]] = None) -> Export:
    """Writes an export atomically from transferable variable values.

    Args:
      out_dir: the export directory to create or replace.
      values: checkpoint name ("layer_0/kernel") -> ndarray, e.g. from
        `transfer.values_from_session`; must be exactly the encoder's variables.
      config: the architecture; `vocab` must have config.vocab_size tokens.
      tokenizer: an auxpretrain.text.Tokenizer (its settings go into the manifest).
      extra: more manifest entries (corpus statistics, corruption, metrics...).

    Returns:
      the written Export, loaded back and verified.
    """
    import tensorflow as tf

    if len(vocab) != config.vocab_size:
        raise ExportError(f"vocabulary has {len(vocab)} tokens but config.vocab_size is {config.vocab_size}")
    from auxpretrain.data.text import KNOWN_PATTERNS

    if tokenizer.pattern not in KNOWN_PATTERNS:
        raise ExportError(f"tokenizer pattern {tokenizer.pattern!r:.60} is not this package's: loading the "
                          "export would refuse it (a pattern from a file is not run); use Tokenizer()")
    graph, saver, variables = build_inference_graph(config)
    missing = sorted(set(variables) - set(values))
    unexpected = sorted(set(values) - set(variables))
    if missing or unexpected:
        raise ExportError(f"export values do not match the encoder: missing {missing}, unexpected {unexpected}")
    for name, var in variables.items():
        if tuple(var.shape.as_list()) != tuple(np.shape(values[name])):
            raise ExportError(f"{name}: value shape {np.shape(values[name])} != variable shape {var.shape}")

    out_dir = os.path.abspath(out_dir)
    tmp = None
    try:
        tmp = make_temporary_dir(out_dir)
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
            sess.run([v.initializer for v in variables.values()],
                     {v.initializer.inputs[1]: np.asarray(values[n], np.float32)
                      for n, v in variables.items()})
            saver.save(sess, os.path.join(tmp, CHECKPOINT_NAME), write_meta_graph=False,
                       write_state=False)
            tf.compat.v1.train.export_meta_graph(
                filename=os.path.join(tmp, GRAPH_META), graph=graph, saver_def=saver.as_saver_def(),
                collection_list=[TRANSFERABLE_VARIABLES, tf.compat.v1.GraphKeys.GLOBAL_VARIABLES,
                                 tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES], clear_devices=True)
        vocab.save(os.path.join(tmp, VOCAB))
        from auxpretrain import __version__

        shapes = {n: (tuple(int(d) for d in v.shape.as_list()), v.dtype.base_dtype.name)
                  for n, v in variables.items()}
        files = {name: sha256_file(os.path.join(tmp, name)) for name in sorted(os.listdir(tmp))}
        manifest = {
            "format_version": FORMAT_VERSION,
            "package": "auxpretrain",
            "package_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "model_config": config.to_dict(),
            "tokenizer": tokenizer.to_dict(),
            "collection": TRANSFERABLE_VARIABLES,
            "checkpoint": CHECKPOINT_NAME,
            "tensors": TENSORS,
            "layers": _layers_manifest(shapes, config),
            "vocab": {"file": VOCAB, "size": len(vocab), "sha256": vocab.sha256,
                      "pad_id": 0, "unk_id": 1},
            "files": files,
        }
        manifest.update(dict(extra or {}))
        atomic_write_json(os.path.join(tmp, MANIFEST), manifest)
        fsync_dir(tmp)
        replace_dir(tmp, out_dir)
    except (OSError, tf.errors.OpError) as e:  # a full or read-only disk
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"{out_dir}: cannot write the export ({first_line(e, 160)}); free some space or "
                          "choose another directory (an export already there is intact)") from None
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_export(out_dir)


def load_export(path: str, verify: bool = True) -> Export:
    """Opens and checks an export directory.

    Reads only the manifest, vocab.txt and checkpoint values (never graph.meta, never a
    pickle). Every manifest value is checked (types, bounds, names inside the directory);
    with `verify`, every file listed in the manifest is checked against its sha256, and the
    checkpoint's variables against the manifest's names and shapes. When a crash between the
    two renames of an export's replacement left no `path`, the previous export (renamed aside
    next to it) is read.

    Raises:
      ExportError: one line naming the file or variable and what to do.
    """
    from auxpretrain.data.vocab import Vocabulary

    path = committed_dir(os.fspath(path), MANIFEST)
    if not os.path.isdir(path):
        raise ExportError(f"{path}: no such export directory (expected the OUT/export folder "
                          "written by `auxpretrain pretrain`)")
    manifest_path, manifest = read_json_descriptor(path, MANIFEST, "an auxpretrain export",
                                              "the export is corrupted, re-export it")
    if manifest.get("package") != "auxpretrain":
        raise ExportError(f"{manifest_path}: not an auxpretrain manifest")
    config, tokenizer = schema.check_saved(manifest, schema.MANIFEST, manifest_path, FORMAT_VERSION,
                                           "the manifest was edited or damaged; re-export it", ExportError)
    files, layers, vocab_info = manifest["files"], manifest["layers"], manifest["vocab"]
    checkpoint = manifest.get("checkpoint", CHECKPOINT_NAME)
    check_listed(path, files, (VOCAB, f"{checkpoint}.index"), checkpoint, manifest_path, "re-export it")
    _check_layers(manifest, config, manifest_path)
    if verify:
        verify_files(path, files, "export", "re-export or re-download it")
    vocab = Vocabulary.load(os.path.join(path, VOCAB))
    if len(vocab) != config.vocab_size or len(vocab) != vocab_info["size"]:
        raise ExportError(f"{os.path.join(path, VOCAB)}: {len(vocab)} tokens but the manifest says "
                          f"{vocab_info['size']} (model vocab_size {config.vocab_size}); re-export it")
    if vocab.sha256 != vocab_info["sha256"]:
        raise ExportError(f"{os.path.join(path, VOCAB)}: sha256 differs from the manifest's vocab entry; "
                          "re-export or re-download it")
    variables: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    for layer in layers:
        for v in layer["variables"]:
            variables[v["name"]] = (tuple(v["shape"]), v["dtype"])
    prefix = os.path.join(path, checkpoint)
    if verify:
        _check_checkpoint(prefix, variables, path)
    return Export(path=path, manifest=manifest, config=config, vocab=vocab, tokenizer=tokenizer,
                  checkpoint_prefix=prefix, variables=variables)


def _check_layers(manifest: Mapping[str, Any], config: ModelConfig, manifest_path: str) -> None:
    """The manifest's layers and their variables are exactly what `config` builds, and its
    default_layers name layers of it."""
    names = config.layer_names()
    listed = [layer["name"] for layer in manifest["layers"]]
    if listed != names:
        raise ExportError(f"{manifest_path}: layers {', '.join(listed)[:80]} do not match model_config "
                          f"({', '.join(names)[:80]}); the manifest was edited, re-export it")
    variables = [(v["name"], tuple(v["shape"]), layer["name"]) for layer in manifest["layers"]
                 for v in layer["variables"]]
    expected = expected_variables(config)
    found = {n: s for n, s, _ in variables}
    wrong = sorted(set(expected.items()) ^ set(found.items())) or \
        [(n, s) for n, s, layer in variables if layer_of(n) != layer]
    if wrong or len(variables) != len(found):
        first = wrong[0] if wrong else (variables[0][0], variables[0][1])
        raise ExportError(f"{manifest_path}: the layers' variables do not match model_config "
                          f"(first difference: {first[0]} {first[1]}); the manifest was edited, re-export it")
    default_layers = (manifest.get("transfer") or {}).get("default_layers")
    unknown = [n for n in default_layers or () if n not in names]
    if unknown:
        raise ExportError(f"{manifest_path}: transfer.default_layers names {unknown[0]!r:.40}, which is not a "
                          f"layer of this export ({', '.join(names)[:80]}); the manifest was edited, re-export it")


def as_export(source) -> Export:
    """An `Export` from an Export or an export directory (loaded and verified)."""
    if isinstance(source, Export):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_export(os.fspath(source), verify=True)
    raise ExportError(f"expected an export directory or an auxpretrain.Export, got {type(source).__name__}")


def expected_variables(config: ModelConfig) -> Dict[str, Tuple[int, ...]]:
    """The encoder's variable names and shapes that `config` implies (build_encoder's scopes)."""
    out = {"embedding/table": (config.vocab_size, config.embedding_size)}
    width = config.embedding_size
    for i in range(config.num_layers):
        out[f"layer_{i}/kernel"] = (config.kernel_width, width, config.hidden_size)
        out[f"layer_{i}/bias"] = (config.hidden_size,)
        width = config.hidden_size
    return out


def _check_checkpoint(prefix: str, variables, path: str) -> None:
    import tensorflow as tf

    try:
        stored = dict(tf.compat.v1.train.list_variables(prefix))
    except Exception as e:
        raise ExportError(f"{path}: cannot read the checkpoint ({first_line(e)}); re-export it") from None
    for name, (shape, _) in variables.items():
        if name not in stored:
            raise ExportError(f"{path}: variable {name} is in the manifest but not in the checkpoint; re-export it")
        if tuple(stored[name]) != tuple(shape):
            raise ExportError(f"{path}: variable {name} has shape {tuple(stored[name])} in the checkpoint "
                              f"but {tuple(shape)} in the manifest; re-export it")
