"""Your own graph and head on a pretrained encoder: restore, freeze the embedding via var_list.

Data:  python examples/make_task_files.py --out data      # data/sentiment_{train,test}.tsv
Run:   python examples/example_graph_api.py --pretrained runs/pretrain/export \\
           --train data/sentiment_train.tsv --test data/sentiment_test.tsv

The encoder is built with `build_encoder` (variables under the export's names: embedding/,
layer_0/, ...), the head is plain user code. `restore_pretrained` restores by name and shape,
prints a report, and returns the variables to train: everything but the frozen embedding
(frozen by leaving it out of the optimizer's var_list). `init_fn(sess)` runs the restore in
your own session.
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
    p.add_argument("--epochs", type=int, default=2, help="passes over the training data (default 2)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main():
    args = parse_args()
    export = ap.load_export(args.pretrained)  # every file's checksum verified
    task = ap.load_task_files(args.train, test=args.test)
    train_ids, _ = ap.encode_texts(task.train.texts, export)  # int32 [n, T], 0 = padding
    test_ids, _ = ap.encode_texts(task.test.texts, export)

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(args.seed)
        ids = tf1.placeholder(tf.int32, [None, None], name="ids")
        labels = tf1.placeholder(tf.int32, [None], name="labels")
        rate = tf1.placeholder_with_default(0.0, [], name="dropout")
        encoder = ap.build_encoder(ids, export.config)
        with tf1.variable_scope("my_head"):  # your own layers: anything goes
            w = tf1.get_variable("w", [export.config.pooled_size, task.num_classes])
            b = tf1.get_variable("b", [task.num_classes], initializer=tf1.zeros_initializer())
            logits = tf.matmul(tf.nn.dropout(encoder.pooled, rate=rate), w) + b
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        restored = ap.restore_pretrained(export, freeze="embedding")  # before the optimizer
        train_op = tf1.train.AdamOptimizer(1e-3).minimize(loss, var_list=restored.var_list)
        init = tf1.global_variables_initializer()
    print(restored.report)

    rng = np.random.default_rng(args.seed)
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        restored.init_fn(sess)  # after the initialiser
        table = sess.run(encoder.embedding_table)
        for epoch in range(args.epochs):
            order = rng.permutation(len(train_ids))
            for i in range(0, len(order), 32):
                idx = order[i:i + 32]
                sess.run(train_op, {ids: train_ids[idx], labels: task.train.labels[idx], rate: 0.5})
        predictions = np.concatenate([sess.run(logits, {ids: test_ids[i:i + 256]}).argmax(-1)
                                      for i in range(0, len(test_ids), 256)])
        unchanged = np.array_equal(table, sess.run(encoder.embedding_table))
    print(f"embedding unchanged after training: {unchanged}")
    print(f"accuracy: {np.mean(predictions == task.test.labels):.4f}  (own graph and head, embedding frozen)")


if __name__ == "__main__":
    try:
        main()
    except ap.AuxPretrainError as e:  # bad files or exports: one line, no traceback
        sys.exit(f"error: {e}")
