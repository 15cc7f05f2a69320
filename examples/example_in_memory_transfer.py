"""Graph A -> graph B without touching disk: train A, copy its transferable layers into B.

Data:  python examples/make_task_files.py --out data      # data/sentiment_{train,test}.tsv
Run:   python examples/example_in_memory_transfer.py --pretrained runs/pretrain/export \\
           --train data/sentiment_train.tsv --test data/sentiment_test.tsv

Model A (encoder + linear head) starts from the export and is fine-tuned. Model B, another graph
with a different head (a hidden layer), receives A's fine-tuned encoder in memory. This is
the plain TF1 recipe below, done by name with shape checks (`Variable.load` does the same but
is deprecated; feeding the initializer adds no op, so B's graph may be finalized):

    values = sess_a.run(graph_a.get_collection(TRANSFERABLE_VARIABLES))
    for var, value in zip(graph_b.get_collection(TRANSFERABLE_VARIABLES), values):
        sess_b.run(var.initializer, {var.initializer.inputs[1]: value})

B's encoder is created with trainable=False (its variables are not in the trainable collection, so
the optimizer leaves them alone): only its new head trains.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow starts: no C++ start-up log
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import auxpretrain as ap  # noqa: E402

tf1 = tf.compat.v1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pretrained", required=True, help="export directory (OUT/export of `auxpretrain pretrain`)")
    p.add_argument("--train", required=True, help="training file: .tsv/.csv/.jsonl with text and label columns")
    p.add_argument("--test", required=True, help="test file, same format")
    p.add_argument("--epochs", type=int, default=2, help="passes over the training data per model (default 2)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def build(config, num_classes, hidden, frozen, seed):
    """One model in its own graph: encoder + (optional hidden layer) + output layer."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        m = {"ids": tf1.placeholder(tf.int32, [None, None]), "labels": tf1.placeholder(tf.int32, [None]),
             "rate": tf1.placeholder_with_default(0.0, [])}
        encoder = ap.build_encoder(m["ids"], config, frozen=config.layer_names() if frozen else ())
        x = tf.nn.dropout(encoder.pooled, rate=m["rate"])
        if hidden:
            x = tf.tanh(ap.dense(x, hidden, "hidden"))
        m["logits"] = ap.build_classifier(x, num_classes)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=m["labels"], logits=m["logits"]))
        m["train_op"] = tf1.train.AdamOptimizer(1e-3).minimize(loss)  # trainable variables only
        m["init"] = tf1.global_variables_initializer()
    return graph, m


def train(sess, m, ids, labels, epochs, rng):
    for _ in range(epochs):
        order = rng.permutation(len(ids))
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            sess.run(m["train_op"], {m["ids"]: ids[idx], m["labels"]: labels[idx], m["rate"]: 0.5})


def accuracy(sess, m, ids, labels):
    predictions = np.concatenate([sess.run(m["logits"], {m["ids"]: ids[i:i + 256]}).argmax(-1)
                                  for i in range(0, len(ids), 256)])
    return float(np.mean(predictions == labels))


def main():
    args = parse_args()
    export = ap.load_export(args.pretrained)
    task = ap.load_task_files(args.train, test=args.test)
    train_ids, _ = ap.encode_texts(task.train.texts, export)
    test_ids, _ = ap.encode_texts(task.test.texts, export)
    rng = np.random.default_rng(args.seed)

    graph_a, a = build(export.config, task.num_classes, hidden=0, frozen=False, seed=args.seed)
    with graph_a.as_default():
        init_a = ap.assign_from_export_fn(export)  # restore ops are made before the session
    graph_b, b = build(export.config, task.num_classes, hidden=64, frozen=True, seed=args.seed + 1)
    graph_b.finalize()  # the in-memory copy adds no op to B

    with tf1.Session(graph=graph_a) as sess_a, tf1.Session(graph=graph_b) as sess_b:
        sess_a.run(a["init"])
        init_a(sess_a)
        train(sess_a, a, train_ids, task.train.labels, args.epochs, rng)
        print(f"accuracy: {accuracy(sess_a, a, test_ids, task.test.labels):.4f}  (graph A: export, fine-tuned)")

        sess_b.run(b["init"])
        report = ap.transfer_between_sessions(sess_a, sess_b)  # A's encoder -> B, no disk
        print(report)
        train(sess_b, b, train_ids, task.train.labels, args.epochs, rng)
        print(f"accuracy: {accuracy(sess_b, b, test_ids, task.test.labels):.4f}  "
              "(graph B: A's encoder in memory, frozen; new hidden layer + head)")


if __name__ == "__main__":
    try:
        main()
    except ap.AuxPretrainError as e:  # bad files or exports: one line, no traceback
        sys.exit(f"error: {e}")
