"""`auxpretrain inspect` (neighbours, projector files), `transfer --max-length`, and TensorFlow's
start-up lines kept off stderr: a bad input gets exactly one line even after TensorFlow loaded."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from auxpretrain.cli import main
from conftest import make_toy_task, write_task_tsv


def test_inspect_prints_nearest_neighbours_by_cosine(capsys, tiny_export_dir):
    from auxpretrain.export import load_export

    assert main(["inspect", tiny_export_dir, "--neighbors", "Good,w1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = lines.index("nearest neighbours (cosine similarity of embedding rows):")
    good = lines[start + 1]
    assert good.startswith("  good: ") and len(good.split(", ")) == 3
    # the first neighbour is the row with the highest cosine similarity, computed here by hand
    export = load_export(tiny_export_dir)
    table = export.values()["embedding/table"]
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    scores = unit @ unit[export.vocab.id_of("good")]
    scores[[0, 1, export.vocab.id_of("good")]] = -2
    best = export.vocab.tokens[int(np.argmax(scores))]
    assert good.split(": ", 1)[1].startswith(f"{best} {scores.max():.3f}")


def test_inspect_writes_projector_files(capsys, tiny_export_dir, tmp_path):
    out_dir = tmp_path / "projector"
    assert main(["inspect", tiny_export_dir, "--projector", str(out_dir), "--projector-rows", "7"]) == 0
    vectors = (out_dir / "vectors.tsv").read_text().splitlines()
    words = (out_dir / "metadata.tsv").read_text().splitlines()
    config = (out_dir / "projector_config.pbtxt").read_text()
    assert len(vectors) == len(words) == 7 and all(len(v.split("\t")) == 11 for v in vectors)
    assert words[:2] == ["bad", "good"]  # <pad> and <unk> left out, most frequent first
    assert 'tensor_path: "vectors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config
    assert "wrote" in capsys.readouterr().out


def test_transfer_max_length_flag_cuts_and_says_so(capsys, tiny_export_dir, tmp_path):
    task = make_toy_task()
    train = write_task_tsv(tmp_path / "train.tsv", task.train)
    code = main(["transfer", "--train", train, "--pretrained", tiny_export_dir, "--max-length", "4",
                 "--epochs", "1"])
    out = capsys.readouterr().out
    assert code == 0
    line = [x for x in out.splitlines() if x.startswith("max length")][0]
    assert line.startswith("max length 4 tokens (max_length); texts cut: ")
    n_cut = int(line.split("texts cut: ")[1].split(" of ")[0])
    assert n_cut > 0


def _cli(*argv, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for name in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL"):
        env.pop(name, None)  # as a user's shell has them: unset
    return subprocess.run([sys.executable, "-m", "auxpretrain.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd)


@pytest.mark.parametrize("case", ["unknown word", "corrupt checkpoint"])
def test_bad_input_after_tensorflow_started_is_one_line_on_stderr(case, tiny_export_dir, tmp_path):
    export = tiny_export_dir
    argv = ["inspect", export, "--neighbors", "nosuchword"]
    if case == "corrupt checkpoint":
        export = str(tmp_path / "export")
        shutil.copytree(tiny_export_dir, export)
        data = [n for n in os.listdir(export) if n.startswith("model.ckpt.data")][0]
        with open(os.path.join(export, data), "r+b") as f:
            f.write(b"\x00" * 16)
        task = make_toy_task()
        argv = ["transfer", "--train", write_task_tsv(tmp_path / "train.tsv", task.train), "--pretrained", export]
    proc = _cli(*argv)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr  # no "absl::InitializeLog" / "oneDNN" line before it
    assert lines[0].startswith("auxpretrain: error: ")
