"""ULMFiT's learning-rate recipe (Howard & Ruder 2018): discriminative rates per layer group,
the slanted triangular schedule, and gradual unfreezing from the top. Pure Python."""

from __future__ import annotations

import math
from typing import Dict, List, Sequence


def discriminative_factors(group_names_top_first: Sequence[str], factor: float) -> Dict[str, float]:
    """Group at depth d from the top gets 1 / factor**d (ULMFiT: factor 2.6)."""
    if factor <= 0:
        raise ValueError(f"layer learning-rate factor must be > 0, got {factor}")
    return {name: 1.0 / factor ** d for d, name in enumerate(group_names_top_first)}

def slanted_triangular(step: int, total_steps: int, cut_frac: float = 0.1,
                       ratio: float = 32.0) -> float:
    """ULMFiT's slanted triangular multiplier of the peak learning rate at `step` (0-based).

    Rises linearly for the first cut_frac of the steps from 1/ratio to 1, then falls linearly
    back to 1/ratio at the last step.
    """
    total = max(int(total_steps), 1)
    cut = max(int(math.floor(total * cut_frac)), 1)
    t = min(max(step, 0), total - 1)
    if t < cut:
        p = t / cut
    else:
        p = 1.0 - (t - cut) / max(cut * (1.0 / cut_frac - 1.0), 1.0)
    p = min(max(p, 0.0), 1.0)
    return (1.0 + p * (ratio - 1.0)) / ratio

def gradual_stages(group_names_top_first: Sequence[str]) -> List[List[str]]:
    """Stage k trains the top k+1 groups: [[head], [head, layer_1], ..., all]."""
    names = list(group_names_top_first)
    return [names[:k + 1] for k in range(len(names))]
