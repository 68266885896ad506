"""Run ``moviead`` commands one after the other in one process, stopping at the first that fails.

``python -m moviead.cli_sequence '<json list of argument lists>'``, e.g.
``'[["train", "a.yaml"], ["evaluate", "--checkpoint", "runs/x"]]'``. The ablation runner trains and evaluates each
Stage-II run this way: one interpreter start and one import of torch, Lightning and transformers instead of two (about
10 s of a 2-core machine per run). Each command is printed (``$ moviead ...``) before it runs; the exit status is the
first non-zero one, else 0.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run each command of the JSON list given as the only argument through :func:`moviead.cli.main`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m moviead.cli_sequence '<json list of moviead argument lists>'", file=sys.stderr)
        return 2
    try:
        commands = json.loads(args[0])
    except json.JSONDecodeError as err:
        print(f"moviead.cli_sequence: the argument is not JSON ({err})", file=sys.stderr)
        return 2
    if not isinstance(commands, list) or not all(isinstance(c, list) and all(isinstance(a, str) for a in c)
                                                 for c in commands):
        print("moviead.cli_sequence: the argument must be a JSON list of lists of strings", file=sys.stderr)
        return 2
    from moviead.cli import main as moviead_main

    for command in commands:
        print(f"$ moviead {' '.join(command)}", flush=True)
        code = moviead_main(command)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
