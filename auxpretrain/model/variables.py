"""The transferable collection, layer names and layer selection. Imports no TensorFlow.

Every variable of the embedding and encoder layers is added to the graph collection
`TRANSFERABLE_VARIABLES` when it is created; heads, optimizer slots and the global step never
are. Layer names are the first scope of a variable name: `embedding`, `layer_0`, ...,
and `head` for a classifier's head.
"""

from __future__ import annotations

import re
from typing import Iterable, List, Optional, Sequence, Union

from auxpretrain.config import normalize_freeze
from auxpretrain.errors import RestoreError

TRANSFERABLE_VARIABLES = "auxpretrain_transferable_variables"
EMBEDDING = "embedding"  # the embedding layer's scope
HEAD = "head"  # the scope of a task model's classifier head (never transferable)


def layer_of(name: str) -> str:
    """Layer name of a variable name: 'layer_1/kernel:0' -> 'layer_1'."""
    return name.split("/", 1)[0]


def strip_suffix(name: str) -> str:
    """'layer_0/kernel:0' -> 'layer_0/kernel' (checkpoint key form)."""
    return name[:-2] if name.endswith(":0") else name


def select_layers(layer_names: Sequence[str],
                  layers: Union[None, int, str, Iterable[str]] = None) -> List[str]:
    """Chooses transferable layers, bottom first.

    Args:
      layer_names: the export's layers in order, e.g. ["embedding", "layer_0", "layer_1"].
      layers: None for all; an int n for the first n (embedding counted as the first);
        a regex string matched in full against layer names ("layer_[01]"); or
        an iterable of names.

    Returns:
      the chosen names in export order.

    Raises:
      RestoreError: n out of range, a regex matching nothing, or an unknown name.
    """
    names = list(layer_names)
    if layers is None:
        return names
    if isinstance(layers, bool):
        raise RestoreError(f"layers must be an int, a regex or names, got {layers!r}")
    if isinstance(layers, int):
        if not 0 <= layers <= len(names):
            raise RestoreError(
                f"layers={layers}: the export has {len(names)} layers ({', '.join(names)}); "
                f"choose 0..{len(names)}")
        return names[:layers]
    if isinstance(layers, str):
        try:
            pattern = re.compile(layers)
        except re.error as e:
            raise RestoreError(f"layers regex {layers!r} is not valid: {e}") from None
        chosen = [n for n in names if pattern.fullmatch(n)]
        if not chosen:
            raise RestoreError(f"layers regex {layers!r} matches none of {', '.join(names)}")
        return chosen
    wanted = list(layers)
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise RestoreError(f"unknown layer(s) {', '.join(unknown)}; the export has {', '.join(names)}")
    return [n for n in names if n in wanted]


def parse_freeze(spec: Union[str, int, None], layer_names: Sequence[str],
                 restored: Optional[Sequence[str]] = None) -> Optional[List[str]]:
    """Layers to freeze from a `--freeze` value: none | all | embedding | N | auto.

    N freezes the bottom N layers, the embedding counted as layer 0 (so 1 = embedding only).
    "all" is every layer of `restored` (the layers a restore gives values) when it is given,
    else every layer: random layers are never frozen by "all".
    Returns None for "auto" (the caller searches), else the list of layer names.
    """
    names = list(layer_names)
    spec = normalize_freeze(spec)
    if spec == "none":
        return []
    if spec == "auto":
        return None
    if spec == "all":
        return names if restored is None else [n for n in names if n in set(restored)]
    if spec == "embedding":
        return names[:1]
    n = int(spec)
    if not 0 <= n <= len(names):
        raise RestoreError(f"--freeze {n}: the model has {len(names)} layers; use 0..{len(names)}")
    return names[:n]
