"""Every field of a real (tiny) pretraining export's manifest replaced in turn by values of
the wrong type, out of bounds or pointing elsewhere, or removed: each variant either loads or
is refused with the package's one-line error, through `load_export`, `auxpretrain inspect` and
(on a subset) `auxpretrain transfer`. Zero raw exceptions. The fields inside the purely
informational objects (corpus, corruption and pretrain settings, the evaluation history: read
by nothing, printed by `inspect`) get fewer values than the others."""

import json
import os
import shutil

import pytest

from auxpretrain.errors import AuxPretrainError

from conftest import make_tiny_corpus, make_toy_task, pretrain_config, run_pretrain

BAD_VALUES = [None, 5, -1, "x", [], {}, 1.5, True, 1e12, "../x", float("inf"), "", 2 ** 70]
class _Removed:
    def __repr__(self):
        return "<removed>"


REMOVED = _Removed()


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """OUT/export of a 4-step pretraining run: every manifest field `pretrain` writes."""
    root = tmp_path_factory.mktemp("fuzz")
    corpus = str(make_tiny_corpus(root / "c.txt", lines=200))
    run_pretrain(corpus, root / "run", pretrain_config(max_steps=4, eval_every=4))
    return str(root / "run" / "export")


def _paths(value, path=()):
    """Every field's path in the manifest (lists: the list and its first item)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + (key,)
            yield from _paths(item, path + (key,))
    elif isinstance(value, list) and value:
        yield path + (0,)
        yield from _paths(value[0], path + (0,))


def _variant(manifest, path, bad):
    data = json.loads(json.dumps(manifest))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if bad is REMOVED:
        del parent[path[-1]]
    else:
        parent[path[-1]] = bad
    return data


INFORMATIONAL = {("corpus",), ("corruption",), ("pretrain",), ("metrics", "history")}


def _variants(manifest):
    for path in _paths(manifest):
        inside = any(path[:len(p)] == p and len(path) > len(p) for p in INFORMATIONAL)
        for bad in ([None, {}, "../x"] if inside else BAD_VALUES) + [REMOVED]:
            yield path, bad, _variant(manifest, path, bad)


def _write(directory, manifest):
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def _check_refusal(error, where):
    assert isinstance(error, AuxPretrainError), f"{where}: raw {type(error).__name__}: {error}"
    assert "\n" not in str(error) and str(error).strip(), where


def test_every_manifest_field_loads_or_is_one_line(export_dir, tmp_path, capsys):
    """Through `auxpretrain inspect`, which is `load_export` (the library call: an
    AuxPretrainError or an Export) and then prints every field it describes."""
    from auxpretrain.cli import main

    original = json.load(open(os.path.join(export_dir, "manifest.json")))
    path = shutil.copytree(export_dir, tmp_path / "export")
    outcomes = {0: 0, 2: 0}
    raw = []
    for field, bad, manifest in _variants(original):
        where = f"{'.'.join(map(str, field))} = {bad!r}"
        _write(path, manifest)
        try:
            code = main(["inspect", str(path)])  # AuxPretrainError -> exit 2; anything else escapes
        except Exception as e:  # noqa: BLE001 - the point: no exception of another kind
            raw.append(f"{where}: {type(e).__name__}: {e}")
            continue
        err = capsys.readouterr().err
        outcomes[code] += 1
        if code == 2:
            assert err.count("\n") == 1 and err.startswith("auxpretrain: error: "), (where, err)
    assert raw == [], f"{len(raw)} raw exceptions, e.g. {raw[:5]}"
    total = sum(outcomes.values())
    assert total > 600 and outcomes[2] > total // 2, outcomes  # the fuzz reached the checked fields


def test_load_export_raises_only_its_one_line_error(export_dir, tmp_path):
    """The library call itself on the variants the command refuses: an AuxPretrainError."""
    from auxpretrain.export import load_export

    original = json.load(open(os.path.join(export_dir, "manifest.json")))
    path = shutil.copytree(export_dir, tmp_path / "export")
    for field in [("model_config",), ("layers", 0, "variables", 0, "shape"), ("transfer", "default_layers"),
                  ("files",), ("vocab", "size"), ("checkpoint",), ("tokenizer",)]:
        for bad in BAD_VALUES + [REMOVED]:
            _write(path, _variant(original, field, bad))
            try:
                load_export(str(path))
            except Exception as e:  # noqa: BLE001
                _check_refusal(e, f"{field} = {bad!r}")


TRANSFER_VARIANTS = [
    (("model_config", "max_length"), 1e12), (("model_config", "max_length"), 10 ** 12),
    (("model_config", "max_length"), 1.5), (("model_config", "max_length"), float("inf")),
    (("model_config", "embedding_size"), 11.0), (("model_config", "vocab_size"), True),
    (("transfer", "default_layers"), ["embeddings"]), (("transfer", "default_layers"), 5),
    (("transfer", "default_layers"), []), (("transfer",), REMOVED),
    (("tokenizer", "pattern"), r"(\w+\s?)+!"), (("tokenizer", "lowercase"), "x"),
    (("checkpoint",), "../run/checkpoints/model.ckpt-4"), (("layers", 0, "variables"), REMOVED),
    (("vocab", "size"), 1e12), (("tensors",), {}), (("metrics", "heldout"), "x"),
]


@pytest.mark.parametrize("field, bad", TRANSFER_VARIANTS,
                         ids=[".".join(map(str, f)) + f"={b!r}"[:30] for f, b in TRANSFER_VARIANTS])
def test_transfer_from_an_edited_manifest_trains_or_is_one_line(export_dir, tmp_path, capsys, field, bad):
    from auxpretrain.cli import main

    original = json.load(open(os.path.join(export_dir, "manifest.json")))
    path = shutil.copytree(export_dir, tmp_path / "export")
    _write(path, _variant(original, field, bad))
    task = make_toy_task()
    train = tmp_path / "train.tsv"
    train.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(task.train.texts, task.train.labels)))
    code = main(["transfer", "--pretrained", str(path), "--train", str(train), "--epochs", "1",
                 "--batch-size", "32"])
    out, err = capsys.readouterr()
    assert code in (0, 2)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("auxpretrain: error: "), err
    else:
        assert "dev accuracy" in out
