"""Text in, token ids out: tokenizing, vocabularies, corpora, good/bad corruption, the encoded
corpus cache and labeled task data. Nothing in this package imports TensorFlow."""
