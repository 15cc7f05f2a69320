"""A Keras model on a pretrained export: text in, class probabilities out (TF 2's Keras, eager).

Data:  python examples/make_task_files.py --out data      # data/sentiment_{train,test}.tsv
Run:   python examples/example_keras.py --pretrained runs/pretrain/export \\
           --train data/sentiment_train.tsv --test data/sentiment_test.tsv

`auxpretrain.keras.TextToIds` turns strings into ids with the export's own tokenizer and
vocabulary (each batch padded to its longest text); `PretrainedEncoder` is the export's
embedding, convolutions and pooling as one Keras layer, restored as `auxpretrain transfer` does
by default (the export's default_layers; the others start random), with a restore report.
The head is plain Keras; `model.fit` stops early on dev accuracy and keeps the best epoch.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow starts: less C++ start-up log
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import auxpretrain as ap  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pretrained", required=True, help="export directory (OUT/export of `auxpretrain pretrain`)")
    p.add_argument("--train", required=True, help="training file: .tsv/.csv/.jsonl with text and label columns")
    p.add_argument("--test", required=True, help="test file, same format")
    p.add_argument("--freeze", default="none", help="none, all (every restored layer), embedding or N (default none)")
    p.add_argument("--epochs", type=int, default=20, help="most passes over the training data (default 20)")
    p.add_argument("--patience", type=int, default=4, help="epochs without a better dev accuracy before stopping")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main():
    args = parse_args()
    import keras

    import auxpretrain.keras as apk

    keras.utils.set_random_seed(args.seed)
    export = ap.load_export(args.pretrained)  # every file's checksum verified
    task = ap.load_task_files(args.train, test=args.test, seed=args.seed)  # dev: 10% of train, stratified

    to_ids = apk.TextToIds(export)
    encoder = apk.PretrainedEncoder(export, layers="default", freeze=args.freeze, seed=args.seed)
    print(encoder.report)
    texts = keras.Input(shape=(), dtype="string")
    x = keras.layers.Dropout(0.5, seed=args.seed)(encoder(to_ids(texts)))
    probs = keras.layers.Dense(task.num_classes, activation="softmax")(x)
    model = keras.Model(texts, probs)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])

    def dataset(split, shuffle=False):
        data = tf.data.Dataset.from_tensor_slices((split.texts, split.labels))
        if shuffle:
            data = data.shuffle(len(split), seed=args.seed, reshuffle_each_iteration=True)
        return data.batch(32)

    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=args.patience, restore_best_weights=True)
    history = model.fit(dataset(task.train, shuffle=True), validation_data=dataset(task.dev), epochs=args.epochs,
                        callbacks=[stop], shuffle=False, verbose=0)  # the dataset shuffles itself
    best = int(np.argmax(history.history["val_accuracy"])) + 1
    print(f"dev accuracy {max(history.history['val_accuracy']):.4f} at epoch {best} of {len(history.epoch)}")
    probabilities = model.predict(dataset(task.test), verbose=0)
    print(f"accuracy: {np.mean(probabilities.argmax(-1) == task.test.labels):.4f}  "
          "(Keras: TextToIds + PretrainedEncoder + Dense)")


if __name__ == "__main__":
    try:
        main()
    except ap.AuxPretrainError as e:  # bad files or exports: one line, no traceback
        sys.exit(f"error: {e}")
