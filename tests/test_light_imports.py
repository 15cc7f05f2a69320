"""Light modules and the CLI's --help import without TensorFlow (checked in a fresh process)."""

import os
import subprocess
import sys

LIGHT_MODULES = ["auxpretrain", "auxpretrain.config", "auxpretrain.errors", "auxpretrain.files",
                 "auxpretrain.schema", "auxpretrain.data.text", "auxpretrain.data.vocab", "auxpretrain.data.embeddings",
                 "auxpretrain.data.corpus", "auxpretrain.data.corruption", "auxpretrain.data.pairs",
                 "auxpretrain.data.encoded", "auxpretrain.data.tasks", "auxpretrain.data.packaged",
                 "auxpretrain.data.demo", "auxpretrain.model.variables", "auxpretrain.model.schedules",
                 "auxpretrain.pretraining.tf_config", "auxpretrain.transfer.layers", "auxpretrain.cli",
                 "auxpretrain.cli.quiet", "auxpretrain.inspection"]


def _modules_after(code):
    """Names of the heavy modules loaded after running `code` in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    probe = code + ("\nimport sys\nprint('LOADED:' + ' '.join(m for m in ('tensorflow', 'nltk', 'datasets')"
                    " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    marker = [line for line in proc.stdout.splitlines() if line.startswith("LOADED:")]
    assert len(marker) == 1, proc.stdout
    return marker[0][len("LOADED:"):].split()


def test_light_modules_do_not_import_tensorflow():
    loaded = _modules_after("\n".join(f"import {m}" for m in LIGHT_MODULES))
    assert "tensorflow" not in loaded
    # the tokenizer and the corpus readers stay fast too: nltk and datasets load on first use
    assert "nltk" not in loaded and "datasets" not in loaded


def test_cli_help_does_not_import_tensorflow():
    code = ("from auxpretrain.cli import main\n"
            "for argv in (['--help'], ['corrupt', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 0\n")
    assert "tensorflow" not in _modules_after(code)


def test_auxpretrain_help_command_does_not_import_tensorflow():
    code = ("import runpy, sys\nsys.argv = ['auxpretrain', '--help']\n"
            "try:\n    runpy.run_module('auxpretrain.cli', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0\n")
    assert "tensorflow" not in _modules_after(code)
