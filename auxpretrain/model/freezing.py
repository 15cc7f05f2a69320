"""Freezing that holds on every update path, and the train ops of discriminative learning
rates and gradual unfreezing (their schedules are in model.schedules).

Four ways to freeze, each leaves frozen variables bit-identical:
  1. `trainable=False` at creation: `build_encoder(frozen=[...])`;
  2. removing variables from TRAINABLE_VARIABLES before the optimizer exists:
     `remove_from_trainable(...)`;
  3. the optimizer's var_list: `trainable_var_list(frozen=[...])` / `build_train_ops(frozen=...)`;
  4. `stop_gradient` at a layer boundary: `build_encoder(stop_gradient_at=...)`.
Whatever the mechanism, `build_train_ops` never puts a frozen variable in an optimizer's
var_list (so Adam creates no slots for it), applies weight decay only to what it trains, and
drops UPDATE_OPS that write to a frozen variable.

ULMFiT's recipe (Howard & Ruder 2018): layer groups top first (head, layer_{n-1}, ...,
embedding); group at depth d from the top gets lr / factor**d (discriminative rates); the
learning rate follows a slanted triangular schedule; gradual unfreezing adds one more group
from the top every epoch. `build_train_ops` builds one train op per unfreezing stage up front,
each over its own var_list, with one Adam per group so a group's moments and bias correction
start when it is unfrozen.
"""

from __future__ import annotations

import collections
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Union

import tensorflow as tf

from auxpretrain.config import TransferConfig, default_of
from auxpretrain.model.variables import HEAD, layer_of, strip_suffix

tf1 = tf.compat.v1


TrainOps = collections.namedtuple(
    "TrainOps", ["stages", "stage_groups", "var_lists", "learning_rate", "optimizers",
                 "factors", "dropped_update_ops", "no_gradient"])
TrainOps.__doc__ = """What `build_train_ops` returns.

stages: list of train ops, one per unfreezing stage (a constant schedule has one).
stage_groups: list of group-name lists trained by each stage.
var_lists: list of variable lists, the exact var_list of each stage.
learning_rate: the base learning rate (a float, or the Tensor that was passed in).
optimizers: dict group name -> tf1.train.AdamOptimizer.
factors: dict group name -> learning-rate multiplier.
dropped_update_ops: UPDATE_OPS left out because they write to a frozen variable.
no_gradient: variables in a var_list that get no gradient (e.g. below a stop_gradient).
"""


def _names(items) -> set:
    """Variable names (no ':0') of variables or names."""
    out = set()
    for x in items:
        out.add(strip_suffix(x if isinstance(x, str) else x.name))
    return out


def variables_of_layers(layers: Iterable[str], graph=None, collection: str = None,
                        prefix: str = "") -> List:
    """Variables of `graph` whose first scope (after `prefix`) is one of `layers`.

    collection: default GLOBAL_VARIABLES (trainable or not, slots excluded by the caller).
    """
    graph = graph if graph is not None else tf1.get_default_graph()
    layers = set(layers)
    key = collection or tf1.GraphKeys.GLOBAL_VARIABLES
    out = []
    for v in graph.get_collection(key):
        name = strip_suffix(v.name)
        if prefix:
            if not name.startswith(prefix):
                continue
            name = name[len(prefix):]
        if layer_of(name) in layers:
            out.append(v)
    return out


def remove_from_trainable(variables_or_layers: Iterable, graph=None) -> List:
    """Freezing mechanism 2: takes variables out of TRAINABLE_VARIABLES.

    Call it after building the model and before creating the optimizer; an optimizer built
    from `tf1.trainable_variables()` will then never see them. Accepts variables, variable
    names or layer names. Returns the variables removed.
    """
    graph = graph if graph is not None else tf1.get_default_graph()
    items = list(variables_or_layers)
    ref = graph.get_collection_ref(tf1.GraphKeys.TRAINABLE_VARIABLES)
    names = _names(x for x in items if not isinstance(x, str))
    strings = {x for x in items if isinstance(x, str)}
    removed = []
    keep = []
    for v in ref:
        name = strip_suffix(v.name)
        if name in names or name in strings or layer_of(name) in strings:
            removed.append(v)
        else:
            keep.append(v)
    ref[:] = keep
    return removed


def trainable_var_list(graph=None, frozen: Iterable = ()) -> List:
    """Freezing mechanism 3: TRAINABLE_VARIABLES minus `frozen` (variables, names or layers)."""
    graph = graph if graph is not None else tf1.get_default_graph()
    frozen = list(frozen)
    frozen_names = _names(x for x in frozen if not isinstance(x, str))
    strings = {x for x in frozen if isinstance(x, str)}
    out = []
    for v in graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES):
        name = strip_suffix(v.name)
        if name in frozen_names or name in strings or layer_of(name) in strings:
            continue
        out.append(v)
    return out


def layer_groups(variables: Sequence, order: Sequence[str]) -> "collections.OrderedDict":
    """Groups variables by layer, TOP FIRST: `order` is bottom first (["embedding", "layer_0",
    ..., "head"]); variables of layers not in `order` join the top group."""
    groups = collections.OrderedDict((name, []) for name in reversed(list(order)))
    top = next(iter(groups)) if groups else HEAD
    for v in variables:
        layer = layer_of(strip_suffix(v.name))
        groups.setdefault(layer if layer in groups else top, []).append(v)
    return collections.OrderedDict((k, vs) for k, vs in groups.items() if vs)


def _written_variables(op, cache) -> set:
    """Names of variables an update op (or anything it depends on) assigns to."""
    if op in cache:
        return cache[op]
    result, stack, seen = set(), [op], set()
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if cur.type in ("Assign", "AssignAdd", "AssignSub", "AssignVariableOp",
                        "AssignAddVariableOp", "AssignSubVariableOp", "ScatterUpdate",
                        "ScatterAdd", "ScatterSub", "ResourceScatterUpdate", "ResourceScatterAdd",
                        "ResourceScatterSub") or cur.type.startswith("ResourceApply") \
                or cur.type.startswith("Apply"):
            target = cur.inputs[0].op
            result.add(target.name)
        stack.extend(t.op for t in cur.inputs)
        stack.extend(cur.control_inputs)
    cache[op] = result
    return result


def _var_op_name(v) -> str:
    return v.op.name


def frozen_update_ops(graph, frozen_vars: Iterable) -> List:
    """UPDATE_OPS of `graph` that write to one of `frozen_vars`."""
    frozen_ops = {_var_op_name(v) for v in frozen_vars}
    cache = {}
    return [op for op in graph.get_collection(tf1.GraphKeys.UPDATE_OPS)
            if _written_variables(op if hasattr(op, "type") else op.op, cache) & frozen_ops]


def build_train_ops(
    loss,
    groups: Union[None, Sequence, Mapping[str, Sequence]] = None,
    learning_rate=default_of(TransferConfig, "learning_rate"),
    frozen: Iterable = (),
    factors: Optional[Mapping[str, float]] = None,
    stages: Optional[Sequence[Sequence[str]]] = None,
    weight_decay: float = 0.0,
    anchors: Optional[Mapping[str, Any]] = None,
    anchor_weight: float = 0.0,
    graph=None,
    name: str = "Adam",
) -> TrainOps:
    """Adam train op(s) that never touch a frozen variable.

    Args:
      loss: float32 scalar Tensor.
      groups: variables to train: None (TRAINABLE_VARIABLES), a list, or an ordered dict
        group name -> variables (top group first, for discriminative rates and stages).
      learning_rate: float or float32 scalar Tensor (e.g. a placeholder fed each step for the
        slanted triangular schedule).
      frozen: variables, variable names or layer names that must not change: dropped from
        every var_list, never decayed, and UPDATE_OPS writing to them are left out.
      factors: group name -> learning-rate multiplier (default 1.0 each).
      stages: lists of group names, one train op each (default: one stage with all groups).
      weight_decay: decoupled (AdamW-style) decay rate: var -= lr * factor * wd * var after each
        Adam step, for trained variables only.
      anchors: variable name -> a variable of the same shape holding its pretrained value;
        with `anchor_weight`, each trained variable named there is pulled toward it after each
        Adam step (L2-SP, decoupled): var -= lr * factor * anchor_weight * (var - anchor).

    Returns:
      TrainOps.
    """
    graph = graph if graph is not None else loss.graph
    frozen = list(frozen)
    frozen_names = _names(x for x in frozen if not isinstance(x, str))
    frozen_strings = {x for x in frozen if isinstance(x, str)}

    def is_frozen(v):
        n = strip_suffix(v.name)
        return n in frozen_names or n in frozen_strings or layer_of(n) in frozen_strings

    if groups is None:
        groups = {"all": graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)}
    elif not isinstance(groups, Mapping):
        groups = {"all": list(groups)}
    groups = collections.OrderedDict(
        (g, [v for v in vs if not is_frozen(v)]) for g, vs in groups.items())
    groups = collections.OrderedDict((g, vs) for g, vs in groups.items() if vs)
    if not groups:
        raise ValueError("nothing to train: every variable is frozen")
    factors = dict(factors or {})
    stages = [list(s) for s in (stages or [list(groups)])]
    stages = [[g for g in s if g in groups] for s in stages]

    all_vars = [v for vs in groups.values() for v in vs]
    frozen_vars = [v for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
                   if is_frozen(v)]
    with graph.as_default():
        grads = tf.gradients(loss, all_vars)
        grad_of = {id(v): g for v, g in zip(all_vars, grads)}
        no_gradient = [v for v, g in zip(all_vars, grads) if g is None]
        optimizers, group_ops = {}, {}
        for g, vs in groups.items():
            pairs = [(grad_of[id(v)], v) for v in vs if grad_of[id(v)] is not None]
            if not pairs:
                continue
            lr = learning_rate * factors.get(g, 1.0)
            opt = tf1.train.AdamOptimizer(lr, name=name)
            with tf1.name_scope(f"train_{g}"):
                apply = opt.apply_gradients(pairs)
                pulled = [v for _, v in pairs if anchor_weight and strip_suffix(v.name) in (anchors or {})]
                if weight_decay or pulled:
                    with tf.control_dependencies([apply]):
                        decays = [tf1.assign_sub(v, lr * weight_decay * v) for _, v in pairs if weight_decay]
                        decays += [tf1.assign_sub(v, lr * anchor_weight * (v - anchors[strip_suffix(v.name)]))
                                   for v in pulled]
                    apply = tf.group(apply, *decays)
            optimizers[g] = opt
            group_ops[g] = apply
        if not group_ops:
            raise ValueError("no trainable variable receives a gradient from the loss")
        update_ops = graph.get_collection(tf1.GraphKeys.UPDATE_OPS)
        stage_ops, var_lists, dropped = [], [], []
        cache = {}
        for k, stage in enumerate(stages):
            stage_vars = [v for g in stage for v in groups[g]]
            trained_ops = {_var_op_name(v) for v in stage_vars}
            not_trained = {_var_op_name(v) for v in frozen_vars}
            not_trained |= {_var_op_name(v) for v in all_vars} - trained_ops
            keep = []
            for op in update_ops:
                raw = op if hasattr(op, "type") else op.op
                if _written_variables(raw, cache) & not_trained:
                    if op not in dropped:
                        dropped.append(op)
                else:
                    keep.append(op)
            ops = [group_ops[g] for g in stage if g in group_ops]
            stage_ops.append(tf.group(*ops, *keep, name=f"train_stage_{k}"))
            var_lists.append(stage_vars)
    return TrainOps(stages=stage_ops, stage_groups=stages, var_lists=var_lists,
                    learning_rate=learning_rate, optimizers=optimizers, factors=factors,
                    dropped_update_ops=dropped, no_gradient=no_gradient)


def slot_variables(graph, variables: Iterable) -> List[str]:
    """Names of optimizer slot variables ('<var>/Adam', ...) of `variables` in `graph`."""
    names = _names(variables)
    out = []
    for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
        n = strip_suffix(v.name)
        if any(n.startswith(base + "/") for base in names):
            out.append(n)
    return out


_APPLY_OPS = ("Apply", "ResourceApply", "SparseApply", "ResourceSparseApply")
# what optimizers write with besides their Apply* kernels (sparse gradients, decoupled decay)
_UPDATE_OPS = {"ScatterAdd", "ScatterSub", "ResourceScatterAdd", "ResourceScatterSub", "AssignAdd", "AssignSub",
               "AssignAddVariableOp", "AssignSubVariableOp"}


def optimizer_traces(graph, variables: Iterable) -> "collections.OrderedDict":
    """What shows that an optimizer already trains each of `variables`: name -> a slot variable
    ('embedding/table/Adam') or an update op ('ResourceApplyAdam op ...', 'ResourceScatterAdd op ...').

    Freezing by var_list or by TRAINABLE_VARIABLES works only before the optimizer exists;
    `restore_pretrained(freeze=...)` refuses a variable that is listed here."""
    variables = [v for v in variables if not isinstance(v, str)]
    by_op = {v.op.name: strip_suffix(v.name) for v in variables}
    own = set(by_op.values()) | _names(graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES))
    out = collections.OrderedDict()
    for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
        name = strip_suffix(v.name)
        for base in by_op.values():
            if name not in own and name.startswith(base + "/") and base not in out:
                out[base] = f"slot variable {name}"
    for op in graph.get_operations():
        if (op.type.startswith(_APPLY_OPS) or op.type in _UPDATE_OPS) and op.inputs:
            base = by_op.get(op.inputs[0].op.name)
            if base is not None and base not in out:
                out[base] = f"{op.type} op {op.name}"
    return out
