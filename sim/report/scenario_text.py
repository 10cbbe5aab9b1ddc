"""What ``pcsim list`` and ``pcsim show NAME`` print about a scenario before it runs.

``pcsim list`` gives one line per bundled scenario: its name and the first sentence of its
description, shortened at a word (ending in ``...``) only when the line would be wider than
the terminal; ``pcsim list -v`` and ``pcsim show NAME`` give the whole description, so a
shortened line always has a whole one a command away. ``pcsim show NAME`` adds the scenario's
main settings, read from the validated scenario (``sim.scenario.load_scenario``, no Brian2):
the model (levels and their sizes, or causes and what is observed), the trials and their
duration, the step, the seed and the readouts.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError
from sim.scenario import Scenario, bundled_match, bundled_scenarios

NAME_WIDTH = 30  # the name column of ``pcsim list``
INDENT = "    "
ELLIPSIS = "..."
LISTED_TRIALS = 8  # more trials than this are counted by condition (or by name), not listed
# a sentence ends at . ! or ? followed by a space and a capital letter (or an opening bracket):
# "(Feldman & Friston 2010): a central cue" and "v = 0.8" do not end one
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"])")


def terminal_width() -> int:
    """The terminal's width in characters (100 where standard output is not a terminal)."""
    return shutil.get_terminal_size((100, 24)).columns


def whole_description(text: str) -> str:
    """The description as one paragraph (the TOML's line breaks are layout, not content)."""
    return " ".join(str(text).split())


def first_sentence(text: str) -> str:
    return SENTENCE_END.split(whole_description(text), maxsplit=1)[0]


def shorten(text: str, width: int) -> str:
    """``text`` if it fits in ``width`` characters, else cut at a word and ended with '...'."""
    if len(text) <= width:
        return text
    return textwrap.shorten(text, max(width, len(ELLIPSIS) + 1), placeholder=" " + ELLIPSIS)


def descriptions() -> dict[str, str]:
    """Each bundled scenario's description, by name (read as TOML; not validated)."""
    from sim.validation import read_toml

    return {name: str(read_toml(path)[0].get("description", ""))
            for name, path in bundled_scenarios().items()}


def list_lines(verbose: bool = False, width: int | None = None) -> tuple[list[str], bool]:
    """``pcsim list``'s lines and whether any description was shortened (then the command
    says how to read them whole). ``verbose``: each name, then its whole description, wrapped
    to ``width`` (default: the terminal's)."""
    width = width or terminal_width()
    lines: list[str] = []
    shortened = False
    for name, text in descriptions().items():
        if verbose:
            lines.append(name)
            lines += wrap(whole_description(text), width)
            lines.append("")
            continue
        sentence = first_sentence(text)
        room = max(width - NAME_WIDTH - 1, 20)
        shown = shorten(sentence, room)
        shortened |= shown != whole_description(text)
        lines.append(f"{name:{NAME_WIDTH}s} {shown}".rstrip())
    return (lines[:-1] if verbose else lines), shortened


def wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, max(width, 40), initial_indent=INDENT, subsequent_indent=INDENT,
                         break_on_hyphens=False) or [INDENT.rstrip()]


def is_scenario_name(argument: str) -> bool:
    """Whether ``pcsim show ARGUMENT`` means a scenario: a ``.toml`` file, or a bundled name
    that is not a file here (a result file of the same name wins)."""
    path = Path(argument)
    if path.suffix.lower() == ".toml":
        return True
    if path.exists():
        return False
    try:
        return bundled_match(argument) is not None
    except ScenarioError:  # a name several bundled scenarios have: show says so
        return True


def scenario_lines(scenario: Scenario, bundled_name: str | None = None,
                   width: int | None = None) -> list[str]:
    """``pcsim show NAME``: the name and file, the whole description, and the main settings."""
    width = width or terminal_width()
    title = bundled_name or scenario.name
    lines = [f"{title} ({scenario.path})", *wrap(whole_description(scenario.description), width),
             ""]
    settings = [*model_lines(scenario.kind.describe(scenario.model)), trials_line(scenario),
                f"step {scenario.dt_ms:g} ms ({scenario.method}), seed {scenario.seed}"]
    if scenario.readouts:
        settings.append(f"readouts: {', '.join(scenario.readouts)}")
    for line in settings:  # a long line continues indented
        lines += textwrap.wrap(line, max(width, 40), subsequent_indent=INDENT,
                               break_on_hyphens=False)
    lines += ["", f"run it: pcsim run {bundled_name or scenario.path}"]
    if bundled_name:
        lines.append(f"your own copy to edit: pcsim new my_{scenario.name}.toml "
                     f"--from {bundled_name}")
    return lines


def model_lines(model: dict[str, Any]) -> list[str]:
    """The model's kind and shape: levels (bottom first) with their sizes, or the causes (a
    mean-field model's factors) and the modalities observed with their outcomes."""
    kind = model.get("kind", "?")
    if "levels" in model:
        levels = []
        for level in model["levels"]:
            function = level.get("nonlinearity")
            shape = (f"{level['size']}, {function}" if function not in (None, "identity")
                     else f"{level['size']}")
            levels.append(f"{level['name']} ({shape})")
        lines = [f"model: {kind}, {len(levels)} levels, input first: {' <- '.join(levels)}"]
        mechanisms = mechanisms_of(model)
        if mechanisms:
            lines.append(f"mechanisms: {', '.join(mechanisms)}")
        return lines
    if "factors" in model:
        lines = [f"model: {kind}, {len(model['factors'])} factors (mean field)"]
        lines += [f"  {factor['name']}: {', '.join(factor['causes'])}"
                  for factor in model["factors"]]
    else:
        lines = [f"model: {kind}, {len(model.get('causes', []))} causes: "
                 f"{', '.join(model.get('causes', []))}"]
    for modality in model.get("modalities", []):
        lines.append(f"observed: {modality['name']} ({', '.join(modality['outcomes'])})")
    return lines


def mechanisms_of(model: dict[str, Any]) -> list[str]:
    """The hierarchical model's optional parts that are switched on (learning, attention, ...)."""
    learning = model.get("learning", {}) or {}
    learned = [name.removeprefix("tau_").removesuffix("_ms") for name, value in learning.items()
               if name.startswith("tau_") and value is not None]
    out = [f"learning ({', '.join(learned)})"] if learned else []
    for part in ("attention", "precision_inference", "covariance", "sparse_prior"):
        if model.get(part):
            out.append(part.replace("_", " "))
    return out


def trials_line(scenario: Scenario) -> str:
    """How many trials, how long, and which: listed by name when few, else counted by
    condition (or by name)."""
    trials = scenario.trials
    durations = {trial.duration_ms for trial in trials}
    total = f"{scenario.duration_ms:g} ms"
    head = (f"trials: {len(trials)} of {durations.pop():g} ms ({total} in all"
            if len(durations) == 1 and len(trials) > 1 else f"trials: {len(trials)} ({total}")
    head += ", shuffled)" if scenario.shuffle else ")"
    if len(trials) <= LISTED_TRIALS:
        return f"{head}: {', '.join(trial.name for trial in trials)}"
    counts = Counter(trial.condition if trial.condition is not None else trial.name
                     for trial in trials)
    return f"{head}; by condition: {', '.join(f'{n} {c}' for n, c in counts.items())}"
