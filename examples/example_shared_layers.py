"""Three models sharing their bottom two layers, both ways; accuracy of each and of their vote.

Data:  python examples/make_task_files.py --out data      # data/sentiment_{train,test}.tsv
Run:   python examples/example_shared_layers.py --pretrained runs/pretrain/export \\
           --train data/sentiment_train.tsv --test data/sentiment_test.tsv

1. One graph: `build_shared_models` builds each model with the same code; the first
   creates the embedding and layer_0, the others reuse them through variable_scope(reuse=True).
   Each model has its own layer_1 and head; one optimizer trains the sum of the three losses.
2. Separate graphs: three TextClassifiers, each with its own graph and session. On
   every minibatch, model 1 takes a partial_fit step and its first two layers are copied into
   model 2, which takes its step and passes them on to model 3; model 3's layers then go back
   to models 1 and 2 (`partial_fit_shared`).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow starts: no C++ start-up log
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import auxpretrain as ap  # noqa: E402

tf1 = tf.compat.v1
MODELS, SHARED = 3, 2  # three models; the embedding and layer_0 are shared


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pretrained", required=True, help="export directory (OUT/export of `auxpretrain pretrain`)")
    p.add_argument("--train", required=True, help="training file: .tsv/.csv/.jsonl with text and label columns")
    p.add_argument("--test", required=True, help="test file, same format")
    p.add_argument("--epochs", type=int, default=2, help="passes over the training data (default 2)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def report(way, predictions, labels, num_classes):
    """Prints the accuracy of each model ([models, n] class ids) and of their majority vote."""
    for i, p in enumerate(predictions):
        print(f"accuracy: {np.mean(p == labels):.4f}  ({way}, model {i})")
    vote = np.array([np.bincount(column, minlength=num_classes).argmax() for column in predictions.T])
    print(f"accuracy: {np.mean(vote == labels):.4f}  ({way}, vote of {len(predictions)})")


def one_graph(export, task, args):
    train_ids, _ = ap.encode_texts(task.train.texts, export)
    test_ids, _ = ap.encode_texts(task.test.texts, export)
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(args.seed)
        ids = tf1.placeholder(tf.int32, [None, None])
        labels = tf1.placeholder(tf.int32, [None])
        rate = tf1.placeholder_with_default(0.0, [])
        models = ap.build_shared_models(ids, export.config, MODELS, task.num_classes, shared_layers=SHARED,
                                        dropout=rate, seed=args.seed)
        loss = tf.add_n([tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=lg))
                         for lg in models.logits])
        init_fn, restore_report = models.restore(export)  # shared layers once, layer_1 into every model
        train_op = tf1.train.AdamOptimizer(1e-3).minimize(loss)
        init = tf1.global_variables_initializer()
    print(restore_report.summary())
    rng = np.random.default_rng(args.seed)
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        init_fn(sess)
        for _ in range(args.epochs):
            order = rng.permutation(len(train_ids))
            for i in range(0, len(order), 32):
                idx = order[i:i + 32]
                sess.run(train_op, {ids: train_ids[idx], labels: task.train.labels[idx], rate: 0.5})
        logits = [np.concatenate(parts) for parts in zip(*[sess.run(models.logits, {ids: test_ids[i:i + 256]})
                                                           for i in range(0, len(test_ids), 256)])]
    report("one graph", np.stack([lg.argmax(-1) for lg in logits]), task.test.labels, task.num_classes)


def separate_graphs(export, task, args):
    labels = [task.label_names[y] for y in task.train.labels]
    models = [ap.TextClassifier.from_pretrained(export, seed=args.seed + i) for i in range(MODELS)]
    rng = np.random.default_rng(args.seed)
    for _ in range(args.epochs):
        order = rng.permutation(len(labels))
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            ap.partial_fit_shared(models, [task.train.texts[j] for j in idx], [labels[j] for j in idx],
                                  shared_layers=SHARED, classes=task.label_names)
    index = {name: i for i, name in enumerate(task.label_names)}
    predictions = np.array([[index[p] for p in m.predict(task.test.texts)] for m in models])
    report("separate graphs", predictions, task.test.labels, task.num_classes)
    for m in models:
        m.close()


def main():
    args = parse_args()
    export = ap.load_export(args.pretrained)
    task = ap.load_task_files(args.train, test=args.test)
    one_graph(export, task, args)
    separate_graphs(export, task, args)


if __name__ == "__main__":
    try:
        main()
    except ap.AuxPretrainError as e:  # bad files or exports: one line, no traceback
        sys.exit(f"error: {e}")
