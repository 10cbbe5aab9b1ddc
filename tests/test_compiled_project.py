"""``sim.compiled.project``: the objects of a shared build directory are those of the sources
now there, decided by their text, not by make's file times.

Scenarios of one shape share a build directory (``sim.compiled.shape``), so two programs whose
code differs can take turns in it. Make recompiles an object only when its source is newer; on
a file system with coarse times (1 s) a source rewritten with another program's text can keep
the time of the object compiled from the old text, and make then links the old object. A
two-file C project shows make doing so, and ``drop_stale_objects`` removing exactly the objects
whose source's text is not the one they were compiled from: a changed source, a source a make
stopped half-way may have compiled, and every object when a header changes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

from sim.compiled import project

MAKEFILE = "main: a.o b.o\n\tcc a.o b.o -o main\n%.o: %.c x.h\n\tcc -c $< -o $@\n"
WRITER = SimpleNamespace(source_files={"a.c", "b.c"}, header_files={"x.h"})


def write(folder: Path, name: str, text: str, like: str | None = None) -> None:
    """Write ``text``; with ``like``, give the file that file's time (coarse times)."""
    (folder / name).write_text(text)
    if like is not None:
        mtime = (folder / like).stat().st_mtime_ns
        os.utime(folder / name, ns=(mtime, mtime))


def made(folder: Path) -> int:
    """make, then the program's exit status (a.c's number)."""
    subprocess.run(["make", "-s"], cwd=folder, check=True, capture_output=True)
    return subprocess.run([str(folder / "main")], cwd=folder).returncode


def test_an_object_is_recompiled_when_its_sources_text_changed_whatever_the_times(tmp_path):
    write(tmp_path, "makefile", MAKEFILE)
    write(tmp_path, "x.h", "int a(void);\n")
    write(tmp_path, "a.c", '#include "x.h"\nint a(void) { return 1; }\n')
    write(tmp_path, "b.c", '#include "x.h"\nint main(void) { return a(); }\n')
    assert made(tmp_path) == 1
    project.record(tmp_path, project.digests(tmp_path, WRITER))
    assert project.drop_stale_objects(tmp_path, project.digests(tmp_path, WRITER)) == []

    # another program of the shape: a.c's text changes, its time stays the object's
    write(tmp_path, "a.c", '#include "x.h"\nint a(void) { return 2; }\n', like="a.o")
    assert made(tmp_path) == 1  # make alone keeps the old object
    assert project.drop_stale_objects(tmp_path, project.digests(tmp_path, WRITER)) == ["a.c"]
    assert not (tmp_path / "a.o").exists() and (tmp_path / "b.o").exists()
    # a make stopped half-way: a.o compiled from the new text, the record not written; then
    # the old text comes back with a.o's time: a.c has no entry, so a.o is stale again
    subprocess.run(["make", "-s", "a.o"], cwd=tmp_path, check=True)
    write(tmp_path, "a.c", '#include "x.h"\nint a(void) { return 1; }\n', like="a.o")
    assert project.drop_stale_objects(tmp_path, project.digests(tmp_path, WRITER)) == ["a.c"]
    assert made(tmp_path) == 1
    project.record(tmp_path, project.digests(tmp_path, WRITER))

    # a header's text changed: every object was compiled with the old one
    write(tmp_path, "x.h", "int a(void); /* another */\n", like="a.o")
    assert sorted(project.drop_stale_objects(tmp_path, project.digests(tmp_path, WRITER))) \
        == ["a.c", "b.c"]
    assert not list(tmp_path.glob("*.o"))
    write(tmp_path, "a.c", '#include "x.h"\nint a(void) { return 3; }\n')
    assert made(tmp_path) == 3


def test_a_damaged_record_makes_every_object_stale(tmp_path):
    for name, text in {"makefile": MAKEFILE, "x.h": "", "a.c": "", "b.c": "",
                       "a.o": "", "b.o": ""}.items():
        write(tmp_path, name, text)
    (tmp_path / project.PROJECT_FILE).write_text("[not a record")
    assert sorted(project.drop_stale_objects(tmp_path, project.digests(tmp_path, WRITER))) \
        == ["a.c", "b.c"]
    assert not list(tmp_path.glob("*.o"))
