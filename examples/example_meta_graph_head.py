"""The export's encoder in your graph by its graph.meta tensor names, then a new head.

Data:  python examples/make_task_files.py --out data      # data/sentiment_{train,test}.tsv
Run:   python examples/example_meta_graph_head.py --pretrained runs/pretrain/export \\
           --train data/sentiment_train.tsv --test data/sentiment_test.tsv

No model code: `ap.import_encoder(export)` puts the encoder graph.meta describes into your
graph, rebuilt from the export's verified model_config by the package's own builders (an
export is data: no op of its graph.meta runs). Its sentence vector is found by name
(`encoder/pooled:0`, as in graph.meta), a new head goes on top of `tf.stop_gradient` of it,
and `init_fn` restores the weights through the package's restore. As the encoder is frozen,
its outputs are computed once per text and fed straight into the pooled tensor while the
head trains (a cache of the frozen layers' output). `import_encoder(export,
trust_graph_meta=True)` would `tf1.train.import_meta_graph` the file itself: only for a
graph.meta you trust, since its ops run in your session.
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
    p.add_argument("--epochs", type=int, default=10, help="passes of the head over the cache (default 10)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main():
    args = parse_args()
    export = ap.load_export(args.pretrained)
    task = ap.load_task_files(args.train, test=args.test)

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(args.seed)
        encoder = ap.import_encoder(export)  # graph.meta's encoder, built by the package (nothing of the file runs)
        ids = graph.get_tensor_by_name("input_ids:0")  # int32 [batch, time]
        pooled = graph.get_tensor_by_name("encoder/pooled:0")  # float32 [batch, pooled_size]
        labels = tf1.placeholder(tf.int32, [None])
        rate = tf1.placeholder_with_default(0.0, [])
        features = tf.nn.dropout(tf.stop_gradient(pooled), rate=rate)  # no gradient into the encoder
        hidden = tf.tanh(ap.dense(features, 64, "new_hidden"))
        logits = ap.dense(hidden, task.num_classes, "new_output")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        head = [v for v in tf1.trainable_variables() if v.name.startswith("new_")]
        train_op = tf1.train.AdamOptimizer(1e-3).minimize(loss, var_list=head)
        init = tf1.global_variables_initializer()
    print(f"new head on {pooled.name}, shape {pooled.shape}")

    def encode(sess, texts):  # the frozen encoder's output, once per text: float32 [n, pooled_size]
        token_ids, _ = ap.encode_texts(texts, export)
        return np.concatenate([sess.run(pooled, {ids: token_ids[i:i + 256]}) for i in range(0, len(token_ids), 256)])

    rng = np.random.default_rng(args.seed)
    with tf1.Session(graph=graph) as sess:
        sess.run(init)
        encoder.init_fn(sess)  # the export's checkpoint values, by name and shape
        train_cache, test_cache = encode(sess, task.train.texts), encode(sess, task.test.texts)
        for epoch in range(args.epochs):
            order = rng.permutation(len(train_cache))
            for i in range(0, len(order), 32):
                idx = order[i:i + 32]
                sess.run(train_op, {pooled: train_cache[idx], labels: task.train.labels[idx], rate: 0.5})
        predictions = sess.run(logits, {pooled: test_cache}).argmax(-1)
    print(f"accuracy: {np.mean(predictions == task.test.labels):.4f}  (imported encoder, frozen; new head)")


if __name__ == "__main__":
    try:
        main()
    except ap.AuxPretrainError as e:  # bad files or exports: one line, no traceback
        sys.exit(f"error: {e}")
