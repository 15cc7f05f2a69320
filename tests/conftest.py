"""Shared fixtures. TensorFlow is imported lazily, so light-module tests stay light."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def tf1():
    """tf.compat.v1 with eager execution off (every test builds in its own tf.Graph())."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    return tf.compat.v1
