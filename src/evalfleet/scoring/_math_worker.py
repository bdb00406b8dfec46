"""The math-verify worker process: one JSON request per stdin line, one reply per line.

math-verify's own timeouts use `signal.alarm`, which only works in a main thread; here they
are off and the parent enforces the time limit by killing this process (see math_equiv).
"""

from __future__ import annotations

import json
import logging
import sys


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify warns on every call that timeouts are off
    from math_verify import parse, verify

    sys.stdout.write('{"ready": true}\n')  # the import is done: time limits start now
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        gold = parse(request["gold"], parsing_timeout=None)
        answer = parse(request["response"], parsing_timeout=None)
        try:
            equal = bool(gold) and bool(answer) and verify(gold, answer, timeout_seconds=None)
        except Exception:  # a sympy failure on a strange answer is a wrong answer
            equal = False
        extracted = str(answer[-1]) if answer else None
        sys.stdout.write(json.dumps({"equal": equal, "extracted": extracted}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
