"""get_layer_params / set_layer_params between two fitted models, each with its own graph.

Data:  python examples/make_task_files.py --out data      # data/sentiment_{train,test}.tsv
Run:   python examples/example_layer_params.py --pretrained runs/pretrain/export \\
           --train data/sentiment_train.tsv --test data/sentiment_test.tsv

Model A fine-tunes every layer of the export; model B trains only a head on the frozen export.
Then A's encoder layers are copied into B one by one (`B.set_layer_params(i, A.get_layer_params(i))`),
B's head, trained for the old features, is measured on A's encoder, and one more pass of
`partial_fit` adapts it. A mis-shaped value is refused with one line.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow starts: no C++ start-up log
import numpy as np  # noqa: E402

import auxpretrain as ap  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pretrained", required=True, help="export directory (OUT/export of `auxpretrain pretrain`)")
    p.add_argument("--train", required=True, help="training file: .tsv/.csv/.jsonl with text and label columns")
    p.add_argument("--test", required=True, help="test file, same format")
    p.add_argument("--epochs", type=int, default=2, help="epochs of each fit (default 2)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main():
    args = parse_args()
    task = ap.load_task_files(args.train, test=args.test)
    names = task.label_names  # labels stay strings: the classifier keeps the map

    def split(part):
        return part.texts, [names[y] for y in part.labels]

    train, dev, test = split(task.train), split(task.dev), split(task.test)
    a = ap.TextClassifier.from_pretrained(args.pretrained, epochs=args.epochs, seed=args.seed)
    b = ap.TextClassifier.from_pretrained(args.pretrained, freeze="all", epochs=args.epochs, seed=args.seed + 1)
    a.fit(*train, dev=dev)
    b.fit(*train, dev=dev)
    print(f"accuracy: {a.evaluate(*test)['accuracy']:.4f}  (A: every layer fine-tuned)")
    print(f"accuracy: {b.evaluate(*test)['accuracy']:.4f}  (B: head only, export frozen)")

    for i, layer in enumerate(a.layer_names[:-1]):  # every encoder layer, not the head
        params = a.get_layer_params(i)  # {"layer_0/kernel": ndarray [3, 128, 256], ...}
        b.set_layer_params(i, params)
        print(f"copied {layer}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in params.items()))
    print(f"accuracy: {b.evaluate(*test)['accuracy']:.4f}  (B with A's encoder, B's old head)")
    b.partial_fit(*train)  # one pass: B's head adapts (its encoder stays frozen)
    print(f"accuracy: {b.evaluate(*test)['accuracy']:.4f}  (B with A's encoder, head refitted one pass)")

    try:
        b.set_layer_params(1, {"kernel": np.zeros((1, 2, 3), np.float32)})
    except ap.RestoreError as e:
        print(f"refused as expected: {e}")
    a.close()
    b.close()


if __name__ == "__main__":
    try:
        main()
    except ap.AuxPretrainError as e:  # bad files or exports: one line, no traceback
        sys.exit(f"error: {e}")
