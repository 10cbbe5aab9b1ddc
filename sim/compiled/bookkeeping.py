"""A compiled program's ``objects.cpp`` compiled without optimisation.

Brian2's ``objects.cpp`` declares the program's arrays and holds the code that allocates them,
fills them from their data files, sets values named on the command line (``run_args``) and
writes results: bookkeeping, no model arithmetic (that is in ``code_objects/``, compiled with
Brian2's flags). At -O3 it was the largest single compile of a cold build. Measured on one
core (AMD EPYC Zen 3), attention/posner's: 5.2 s of g++ at -O3, 2.4 s at -O1, 1.3 s at -O0.

So make reads the program's makefile and then ``RULES`` (``make_command``): ``objects.o`` is
compiled with the makefile's flags less its ``-O`` and the standard headers' precompiled form
(``sim.compiled.headers``: built for -O3; a .gch of other optimisation flags once crashed g++),
at -O0. The code objects' flags are unchanged; the results are equal
(``tests/test_compiled_bookkeeping.py``).
"""

from __future__ import annotations

from pathlib import Path

from sim.compiled.warm import write_text_if_changed

RULES_FILE = "pcsim_bookkeeping.mk"
RULES = ("# pcsim (sim.compiled.bookkeeping): the arrays' bookkeeping compiled without "
         "optimisation\n"
         "objects.o: OPTIMISATIONS := $(filter-out -O% -include%,$(OPTIMISATIONS)) -O0\n")


def make_command(directory: Path, command: list[str]) -> list[str]:
    """``command`` (make and its arguments) reading ``directory``'s makefile and then
    ``RULES``, written there where they are not so."""
    write_text_if_changed(directory / RULES_FILE, RULES)
    return [*command, "-f", "makefile", "-f", RULES_FILE]
