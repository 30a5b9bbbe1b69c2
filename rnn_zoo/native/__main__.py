"""``python -m rnn_zoo.native build|status``: build the native CPU kernels
now (what ``make`` runs after installing), or say whether they run here.

Exit status: 0 when built (``build``) or usable (``status``), 1 when not
(the one-line reason on stderr; the runner then uses the scan).
"""

import sys

from rnn_zoo import native
from rnn_zoo.errors import UserError

USAGE = "usage: python -m rnn_zoo.native build|status"


def main(argv: list[str]) -> int:
  if len(argv) != 1 or argv[0] not in ("build", "status"):
    print(USAGE, file=sys.stderr)
    return 2
  if argv[0] == "status":
    line = native.status()
    print(f"rnn_zoo.native: {line}")
    return 0 if line.startswith("used") else 1
  try:
    path = native.build()
  except UserError as e:
    print(f"rnn_zoo.native: not built: {str(e).splitlines()[0]}", file=sys.stderr)
    return 1
  print(f"rnn_zoo.native: built {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
