"""Models in separate graphs that share layers: copying layers between fitted classifiers, and
M classifiers that share their first n layers, trained step by step with the shared layers
handed from one to the next (skflow's multi-model `partial_fit` recipe)."""

from __future__ import annotations

from typing import List, Optional, Sequence

from auxpretrain.config import LayerSpec
from auxpretrain.data.tasks import label_list
from auxpretrain.errors import ConfigError
from auxpretrain.transfer.classifier import TextClassifier


def copy_layers(source: TextClassifier, target: TextClassifier, layers: LayerSpec = None) -> List[str]:
    """`target.copy_layers_from(source, layers)`: copies layers between two fitted classifiers."""
    return target.copy_layers_from(source, layers)


def partial_fit_shared(models: Sequence[TextClassifier], texts: Sequence[str], labels: Sequence,
                       shared_layers: LayerSpec = 2, classes: Optional[Sequence] = None) -> None:
    """One round of training M models that share their first n layers, on one batch.

    Model 1 takes a `partial_fit` step on (texts, labels) and its shared layers are copied into
    model 2, which takes its step and passes them on, ...; after model M, its shared layers are
    copied back into models 1..M-1, so all M end the round with the same shared layers.

    Args:
      models: M >= 2 TextClassifiers with the same shared-layer shapes and vocabulary (e.g. M
        `from_pretrained` of one export with different seeds).
      texts, labels: one minibatch.
      shared_layers: n (the first n layers, embedding counted first), a regex or names.
      classes: every class, when the batch may not show them all (first call).
    """
    models = list(models)
    if len(models) < 2:
        raise ConfigError(f"partial_fit_shared needs at least two models, got {len(models)}")
    for i, model in enumerate(models):
        if i:
            model.prepare(label_list(labels), classes)  # built now, so it can receive the shared layers
            model.copy_layers_from(models[i - 1], shared_layers)
        model.partial_fit(texts, labels, classes=classes)
    for model in models[:-1]:
        model.copy_layers_from(models[-1], shared_layers)
