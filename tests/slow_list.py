"""Writes tests/slow_tests.txt from a ``pytest --durations=0`` report.

  python -m pytest -q -n 2 -m "slow or not slow" --durations=0 > durations.txt
  python tests/slow_list.py durations.txt [--threshold 4]

A test is slow when its setup + call + teardown took at least ``--threshold`` seconds.
"""

import argparse
import collections
import pathlib
import re

HERE = pathlib.Path(__file__).resolve().parent
# Kept in the default run whatever their time: the two-process cluster test guards the
# pipe and port races that once made the README's test command fail on a fresh machine.
ALWAYS_DEFAULT = {
    "tests/test_sharding_multiprocess.py::test_two_process_cluster_sharded_bayes_rule"}
_LINE = re.compile(r"\s*([\d.]+)s (?:call|setup|teardown)\s+(\S+)")
HEADER = """\
# Tests over {threshold:g} s each (setup + call + teardown) in `pytest -n 2 --durations=0`
# on the 2-core reference machine. They carry the `slow` mark (tests/conftest.py), so
# the README's test command (`python -m pytest -q -n 2`) leaves them out and
# `python -m pytest -q -n 2 -m slow` runs them; CI runs both. Regenerate with
# tests/slow_list.py. A docs page with one slow block is slow as a whole (its blocks
# share one namespace). The two-process cluster test stays in the default run.
"""


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("report", help="output of pytest --durations=0")
  p.add_argument("--threshold", type=float, default=4.0, help="seconds")
  args = p.parse_args(argv)
  total = collections.defaultdict(float)
  for line in pathlib.Path(args.report).read_text().splitlines():
    m = _LINE.match(line)
    if m:
      total[m.group(2)] += float(m.group(1))
  slow = sorted(k for k, v in total.items()
                if v >= args.threshold and k not in ALWAYS_DEFAULT)
  out = HERE / "slow_tests.txt"
  out.write_text(HEADER.format(threshold=args.threshold) + "\n".join(slow) + "\n")
  print(f"{len(slow)} slow tests of {len(total)} timed; wrote {out}")


if __name__ == "__main__":
  main()
