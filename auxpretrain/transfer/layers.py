"""Getting and setting one layer's values by index or name (skflow's get/set_layer_params),
shared by `TaskModel` and `TextClassifier`. No TensorFlow here: callers read and assign."""

from __future__ import annotations

from typing import Dict, Mapping, Sequence, Union

import numpy as np

from auxpretrain.errors import RestoreError


def resolve_layer(names: Sequence[str], layer: Union[int, str]) -> str:
    """The name of `layer`: an index into `names` (0 = embedding, last = head) or a name."""
    names = list(names)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not 0 <= layer < len(names):
            raise RestoreError(f"layer index {layer} is out of range: this model has {len(names)} layers, "
                               f"0..{len(names) - 1} ({', '.join(names)})")
        return names[int(layer)]
    if layer not in names:
        raise RestoreError(f"unknown layer {layer!r}; this model has {', '.join(names)}")
    return layer


def checked_layer_values(name: str, current: Mapping[str, np.ndarray],
                         values: Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]) -> Dict[str, np.ndarray]:
    """Layer `name`'s variables after `values` is applied to `current` (its variables' values, in
    `get_layer_params` order), as float32 arrays.

    `values`: a dict keyed by full ("layer_0/kernel") or short ("kernel") names, some or all of
    the layer's variables, or a list of all of them in order. An unknown name, a wrong count or
    another shape raises RestoreError naming the variable and both shapes.
    """
    names = list(current)
    if isinstance(values, Mapping):
        items = []
        for key, value in values.items():
            full = key if "/" in key else f"{name}/{key}"
            if full not in current:
                raise RestoreError(f"{full}: not a variable of layer {name} ({', '.join(names)})")
            items.append((full, value))
    else:
        values = list(values)
        if len(values) != len(names):
            raise RestoreError(f"layer {name} has {len(names)} variables ({', '.join(names)}), "
                               f"got {len(values)} values")
        items = list(zip(names, values))
    out = dict(current)
    for full, value in items:
        value = np.asarray(value, np.float32)
        shape = tuple(np.shape(current[full]))
        if tuple(value.shape) != shape:
            raise RestoreError(f"set_layer_params: {full} has shape {list(shape)}, "
                               f"got {list(value.shape)}; pass values of the same shape")
        out[full] = value
    return out
