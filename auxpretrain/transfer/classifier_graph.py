"""The graph and session a `TextClassifier` owns: the task graph from token ids, Adam over the
unfrozen variables (one group per layer when their learning rates differ), assigners for every
variable and for each layer, and the restore of the export's layers or of saved values."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from auxpretrain.config import ModelConfig, TransferConfig
from auxpretrain.errors import RestoreError
from auxpretrain.model import freezing
from auxpretrain.model.schedules import discriminative_factors
from auxpretrain.model.variables import HEAD, layer_of, strip_suffix
from auxpretrain.transfer import restore as restore_lib
from auxpretrain.transfer.task_graph import build_task_graph

tf1 = tf.compat.v1


@dataclasses.dataclass
class ClassifierGraph:
    """A classifier's graph: model handles, train op and assigners."""

    model: Any  # task_graph.TaskGraph
    train_op: Any
    all_vars: Any  # Assigner over encoder + head variables
    layers: Dict[str, Any]  # layer name -> Assigner over its variables
    shapes: Dict[str, Tuple[int, ...]]  # variable name -> shape


def build_classifier_graph(config: ModelConfig, num_classes: int, settings: TransferConfig,
                           frozen_layers: Sequence[str], export=None,
                           restore_layers: Optional[Sequence[str]] = None,
                           values: Optional[Mapping[str, np.ndarray]] = None):
    """Builds the graph and opens its session, variables from `values` or `restore_layers` of
    `export` (the others from their initialisers). Returns (ClassifierGraph, session, report):
    report is the RestoreReport of the restore (None with `values` or nothing restored)."""
    s = settings
    model = build_task_graph(config, num_classes, s.seed, kind="ids", frozen=frozen_layers,
                             layer_dropout=s.layer_dropout > 0)
    graph = model.graph
    present = config.layer_names() + [HEAD]
    init_restore = report = None
    with graph.as_default():
        if values is None and restore_layers:
            init_restore, report = restore_lib.restore(export, graph=graph, layers=list(restore_layers),
                                                       strict=not s.allow_partial)
        model_vars = [v for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
                      if layer_of(strip_suffix(v.name)) in present]
        frozen_vars = [v for v in model_vars if layer_of(strip_suffix(v.name)) in set(frozen_layers)]
        var_list = freezing.trainable_var_list(graph, frozen=frozen_vars)
        groups = freezing.layer_groups(var_list, present)
        if s.layer_lr_factor is not None or (s.embedding_lr_scale != 1.0 and "embedding" in groups):
            factors = discriminative_factors(list(groups), s.lr_factor)
            if "embedding" in factors:
                factors["embedding"] *= s.embedding_lr_scale
        else:
            groups, factors = {"all": var_list}, None
        train = freezing.build_train_ops(model.loss, groups, model.learning_rate, frozen=frozen_vars,
                                         factors=factors, weight_decay=s.weight_decay)
        all_vars = restore_lib.Assigner(model_vars, graph, name="model_values")
        layers = {name: restore_lib.Assigner([v for v in model_vars if layer_of(strip_suffix(v.name)) == name],
                                             graph, name=f"set_{name}") for name in present}
        init_all = tf1.global_variables_initializer()
    graph.finalize()
    session = tf1.Session(graph=graph)
    session.run(init_all)
    if init_restore is not None:
        init_restore(session)
    if values is not None:
        missing = sorted(set(all_vars.names) - set(values))
        if missing:
            session.close()
            raise RestoreError(f"model values lack {', '.join(missing)}; the saved model is incomplete")
        all_vars.set(session, {n: values[n] for n in all_vars.names})
    if report is not None:
        report.set_trainable([v.name for vs in train.var_lists for v in vs])
    handles = ClassifierGraph(model=model, train_op=train.stages[0], all_vars=all_vars, layers=layers,
                              shapes={strip_suffix(v.name): tuple(v.shape.as_list()) for v in model_vars})
    return handles, session, report
