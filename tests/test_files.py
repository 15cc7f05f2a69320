"""auxpretrain.files: a directory swap killed at each of its crash points, the run-directory lock
(refused while held, free once the holder dies) and the modes of what is written. The crashes
are real: a subprocess doing the swap is SIGKILLed at the chosen moment."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from auxpretrain.errors import InputError
from auxpretrain.files import DirectoryLock, committed_dir, make_temporary_dir, recover_dir, replace_dir

# Builds OUT/export-like directories named by their content and swaps a new one in, SIGKILLing
# itself at a crash point: "writing" (the temporary directory half written), "between" (after
# the first of the swap's two renames), "after" (both renames done, the old one not removed).
SWAP = textwrap.dedent("""
    import os, signal, sys
    from auxpretrain import files
    out, point = sys.argv[1], sys.argv[2]
    tmp = files.make_temporary_dir(out)
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        f.write('"new"')
    if point == "writing":
        os.kill(os.getpid(), signal.SIGKILL)
    renames = []
    real_rename = os.rename
    def rename(a, b):
        if point == "between" and len(renames) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        renames.append((a, b))
        real_rename(a, b)
    os.rename = rename
    real_rmtree = files.shutil.rmtree
    def rmtree(path, **kw):
        if point == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        real_rmtree(path, **kw)
    files.shutil.rmtree = rmtree
    files.replace_dir(tmp, out)
""")


def _content(path):
    with open(os.path.join(path, "manifest.json")) as f:
        return f.read()


def _crashed_swap(tmp_path, point):
    out = tmp_path / "export"
    out.mkdir()
    (out / "manifest.json").write_text('"old"')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", SWAP, str(out), point], env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return str(out)


@pytest.mark.parametrize("point, reader_sees", [("writing", '"old"'), ("between", '"old"'), ("after", '"new"')])
def test_a_swap_killed_at_each_crash_point_is_recovered(tmp_path, point, reader_sees):
    out = _crashed_swap(tmp_path, point)
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".export.")]
    assert leftovers  # what the crash left: a temporary or an old directory
    assert os.path.exists(out) == (point != "between")
    # a reader finds a whole export at once (the old one when the crash came between renames)
    assert _content(committed_dir(out, "manifest.json")) == reader_sees
    # the next write repairs and cleans up before it starts
    tmp = make_temporary_dir(out)
    assert _content(out) == reader_sees
    assert sorted(os.listdir(tmp_path)) == sorted(["export", os.path.basename(tmp)])
    (tmp_path / os.path.basename(tmp) / "manifest.json").write_text('"newer"')
    replace_dir(tmp, out)
    assert _content(out) == '"newer"' and os.listdir(tmp_path) == ["export"]


def test_a_live_writers_temporary_directory_is_left_alone(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    mine = make_temporary_dir(str(out))  # this process is alive: not a leftover
    recover_dir(str(out))
    assert os.path.isdir(mine)


def test_under_the_lock_leftovers_of_a_reused_pid_are_recovered(tmp_path):
    """A leftover whose pid runs again (a restarted container's pid 1, here this process) is
    a live writer's to recover_dir, but not to the holder of the writers' lock: the previous
    export goes back in place, the temporary goes."""
    out = tmp_path / "export"
    old = tmp_path / f".export.old-{os.getpid()}-abcdef12"
    old.mkdir()
    (old / "manifest.json").write_text('"old"')
    tmp = tmp_path / f".export.tmp-{os.getpid()}-deadbeef"
    tmp.mkdir()
    recover_dir(str(out))
    assert not out.exists() and old.is_dir() and tmp.is_dir()  # a live pid: left alone
    recover_dir(str(out), locked=True)
    assert _content(str(out)) == '"old"' and os.listdir(tmp_path) == ["export"]


def test_temporary_directories_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        tmp = make_temporary_dir(str(tmp_path / "x"))
    finally:
        os.umask(old)
    assert os.stat(tmp).st_mode & 0o777 == 0o750


HOLD = "import sys, time\nfrom auxpretrain.files import DirectoryLock\nDirectoryLock(sys.argv[1]).acquire()\n" \
       "print('locked', flush=True)\ntime.sleep(600)\n"


def test_the_lock_refuses_a_second_holder_and_dies_with_the_first(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match=rf"is in use by another run \(pid {holder.pid}\); wait for it"):
            DirectoryLock(str(tmp_path)).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs; the OS releases the lock
        holder.wait()
    with DirectoryLock(str(tmp_path)) as lock:
        assert open(lock.path).read().strip() == str(os.getpid())
        with pytest.raises(InputError, match="in use"):  # one holder, even in the same process
            DirectoryLock(str(tmp_path)).acquire()
    lock.acquire().release(remove=True)
    assert not os.path.exists(lock.path)


def test_json_and_saved_directories_follow_the_umask(tiny_export_dir, tmp_path):
    """Under umask 022: directories 0755, files 0644 (not 0700 / 0600)."""
    from auxpretrain.export import load_export, write_export
    from auxpretrain.files import atomic_write_json

    before = load_export(tiny_export_dir)
    old = os.umask(0o022)
    try:
        write_export(str(tmp_path / "export"), before.values(), before.config, before.vocab, before.tokenizer)
        atomic_write_json(str(tmp_path / "metrics.json"), {"a": 1})
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "export").st_mode & 0o777 == 0o755
    modes = {name: os.stat(tmp_path / "export" / name).st_mode & 0o777 for name in os.listdir(tmp_path / "export")}
    assert set(modes.values()) == {0o644}, modes
    assert os.stat(tmp_path / "metrics.json").st_mode & 0o777 == 0o644
    assert json.load(open(tmp_path / "metrics.json")) == {"a": 1}
