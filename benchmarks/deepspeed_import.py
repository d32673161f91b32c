"""Time of DeepSpeed's first import in a fresh process: plain ``import deepspeed`` against
``minillm_distill.train.deepspeed_import.import_deepspeed`` (MLflow hidden from DeepSpeed's autotuner), alternating.
Only meaningful where ``mlflow`` (e.g. ``mlflow-skinny``, the ``trackers`` extra) is installed.

Run (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/deepspeed_import.py --rounds 6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

CHILD = {
    "plain": "import deepspeed",
    "guarded": "from minillm_distill.train.deepspeed_import import import_deepspeed; import_deepspeed()",
}


def child(kind: str) -> dict:
    import time

    t0 = time.perf_counter()
    exec(CHILD[kind])
    return {"import_s": time.perf_counter() - t0, "mlflow_imported": int("mlflow" in sys.modules)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--child", choices=sorted(CHILD), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        harness.emit(child(args.child))
        return
    script = str(Path(__file__).resolve())
    systems = {k: (lambda r, k=k: harness.run_child([script, "--child", k])) for k in ("plain", "guarded")}
    print("first import of deepspeed in a fresh process; machine:", harness.machine_line())
    res = harness.alternate(systems, args.rounds)
    for k in systems:
        print(f"  {k:8s} s {harness.summary([r['import_s'] for r in res[k]])}")
    ratio = harness.ratio_summary([r["import_s"] for r in res["guarded"]], [r["import_s"] for r in res["plain"]])
    print(f"  guarded/plain per pair: {ratio}")


if __name__ == "__main__":
    main()
