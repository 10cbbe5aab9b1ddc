"""Running a Brian2 network as one compiled program (issue 23, ``docs/design/compiled-step.md``).

Brian2's ``cpp_standalone`` device turns a whole protocol into one C++ program: no Python runs
during the simulation, so a small model's step costs well under a microsecond instead of the
runtime device's tens. This package is the machinery pcsim needs around that device, apart
from what any one model builds:

- ``sim.compiled.device``: ``standalone(key)`` switches Brian2 to the device for building one
  network, keeps its program in a cache directory per model shape (a warm run compiles nothing),
  and switches back afterwards; ``Program.run`` builds and runs the program, and says whether
  it ran to the end, was interrupted (Ctrl-C, SIGTERM) or stopped by a compiled check
  (``Program.stop_when``: divergence).
- ``sim.compiled.launch``: running the program as a child process, forwarding signals to it,
  reading its progress lines, and the compiled stop check's C++ code.

The report side never imports this package (it imports Brian2).
"""
