"""Which objects of a build directory were compiled from the sources now there.

A program's build directory (``sim.compiled.device``) is named by its shape
(``sim.compiled.shape``), and scenarios of one shape share it, so the key must never decide
what runs. Every build writes the whole project again (Brian2 rewrites a file only where its
text changed), and before make runs, ``drop_stale_objects`` removes each object whose source's
text is not the text it was compiled from, as recorded in ``PROJECT_FILE`` by the last make
that succeeded there. Make then compiles exactly what changed, whatever the files' times say.
A warm build of one program changes no text and removes nothing; two programs of one shape
that take turns in a directory (the ERP's signed and rectified sums: 2 of 37 sources differ)
recompile what differs, each time.

Cost: reading and hashing the project's text, ~40-80 small files (0.1-0.5 MB) that Brian2 has
just compared with the same files: a few ms of a warm run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sim.compiled.warm import write_record

PROJECT_FILE = "pcsim-project.json"


def digests(directory: Path, writer) -> dict[str, str]:
    """The text of the project Brian2 has just written in ``directory`` (``writer``: its
    ``CPPWriter``): path -> SHA-256 of every source, header and ``brianlib`` file, and the
    makefile (it holds the compiler's flags)."""
    names = {*writer.source_files, *writer.header_files, "makefile",
             *(path.relative_to(directory).as_posix()
               for path in (directory / "brianlib").rglob("*")
               if path.suffix in (".h", ".hpp", ".c", ".cpp"))}
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
            for name in sorted(names)}


def drop_stale_objects(directory: Path, project: dict[str, str]) -> list[str]:
    """Remove each object file in ``directory`` that was not compiled from the source text
    now there (``project``, from ``digests``), so make compiles it whatever the files'
    times say; return the sources whose objects were removed.

    ``PROJECT_FILE`` holds the text (digests) of the project as the last make that succeeded
    compiled it. A source whose text differs from its entry, or has none, is stale; a header,
    a ``brianlib`` file or the makefile that differs makes every source stale (each object
    reads them). Before make runs, the entries of stale sources are dropped from the record,
    so a make stopped half-way leaves no entry that an object no longer matches; after it
    succeeds the whole project is recorded (``record``). Make alone decides by
    modification times, which a file system of coarse times (1 s) can leave equal when two
    programs of one shape take turns in the directory; this check decides by text."""
    try:
        compiled = json.loads((directory / PROJECT_FILE).read_text())
    except (OSError, ValueError):
        compiled = {}
    if not isinstance(compiled, dict):  # damaged
        compiled = {}
    sources = [name for name in project if name.endswith((".cpp", ".c"))]
    if any(compiled.get(name) != digest for name, digest in project.items()
           if name not in sources):
        stale, kept = sources, {}
    else:
        stale = [name for name in sources if compiled.get(name) != project[name]]
        kept = {name: digest for name, digest in compiled.items() if name not in stale}
    for name in stale:
        (directory / name).with_suffix(".o").unlink(missing_ok=True)
    if stale:  # relinked whatever the times say (an object remade in the second ``main`` was)
        (directory / "main").unlink(missing_ok=True)
    if kept != compiled:
        record(directory, kept)
    return stale


def record(directory: Path, project: dict[str, str]) -> None:
    """Keep ``project`` (``digests``) as the text the objects in ``directory`` were compiled
    from (written whole, then renamed: a reader never sees half a record)."""
    write_record(directory / PROJECT_FILE, project)
