"""Do the chapters' claims hold at every course seed? Execute, collect, tabulate.

    python scripts/check_claims.py                          # every chapter, seeds 0 1 2
    python scripts/check_claims.py --seeds 0 1 2 3 4 notebooks/01_inference.ipynb
    python scripts/check_claims.py --json sweep.json --keep /tmp/executed

Each chapter is executed in memory (nbclient, kernel ``python3``, working directory = the
chapter's folder, so its relative files resolve) once per seed, with

- ``TUTORIAL_SEED=<seed>``: every draw of the chapter derives from it;
- ``TUTORIAL_CLAIMS_REPORT=<tmp file>``: every claim appends its verdict as a JSON line;
- ``TUTORIAL_CLAIMS_RAISE=0``: a failed claim prints ✗ and the chapter goes on, so the sweep
  sees every claim (the default, in CI and for learners, raises);
- ``PYTHONPATH`` starting with this checkout, so the kernel imports this ``tutorial_utils``.

The shipped notebooks are never written (``--keep DIR`` saves the executed copies in DIR).
It prints, per chapter, a table of claim × seed (✓ / ≈ / ✗ with the interval or numbers),
then every failure in full, and exits 1 if any claim fails at any seed, a claim of one seed
is not stated at another (its sentence changed with the draws), or a cell raised; else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKS = {"holds": "✓", "fails": "✗", "error": "E"}
STATEMENT_WIDTH, CELL_WIDTH = 58, 32


def run_notebook(path: Path, seed: int, report: Path, timeout: int = 900,
                 keep: Path | None = None) -> str | None:
    """Execute ``path`` at ``seed`` in memory, claims recorded to ``report``.

    Returns None, or a one-line description of the cell error that stopped the chapter.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    env = {"TUTORIAL_SEED": str(seed), "TUTORIAL_CLAIMS_REPORT": str(report),
           "TUTORIAL_CLAIMS_RAISE": "0", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in os.environ.get(
               "PYTHONPATH", "").split(os.pathsep) if p])}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    error = None
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        error = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines
                     else "cell error")[:300]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, keep / f"{path.stem}.seed{seed}.ipynb")
    return error


def read_report(report: Path) -> list[dict]:
    """The JSON lines a run appended (none if the file was never created)."""
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def keyed(records: list[dict]) -> dict[tuple[str, int], dict]:
    """Records by (statement, occurrence): a sentence stated twice is two claims."""
    seen: dict[str, int] = {}
    out = {}
    for r in records:
        k = seen.get(r["statement"], 0)
        seen[r["statement"]] = k + 1
        out[(r["statement"], k)] = r
    return out


def verdict_of(record: dict | None) -> str:
    """'holds', 'fails', 'error' or 'missing'."""
    if record is None:
        return "missing"
    if record.get("verdict") == "error":
        return "error"
    return "holds" if record.get("holds") else "fails"


def cell_text(record: dict | None) -> str:
    """✓ / ≈ / ✗ with the short numbers of one claim at one seed."""
    v = verdict_of(record)
    if v == "missing":
        return "– not stated"
    mark = "≈" if record["kind"] == "mixed" and v == "holds" else MARKS[v]
    evidence = record.get("evidence", "")
    if "low" in record and "]" in evidence:
        evidence = evidence.split("]")[0] + "]"
    elif record["kind"] == "over_seeds":
        evidence = evidence.split(" over ")[0]
    elif record["kind"] == "mixed":
        evidence = f"{record['numbers']['yes']}/{record['numbers']['parts']} yes"
    text = f"{mark} {evidence}".strip()
    return text if len(text) <= CELL_WIDTH else text[:CELL_WIDTH - 1] + "…"


def table(name: str, by_seed: dict[int, list[dict]], errors: dict[int, str | None]
          ) -> tuple[list[str], list[str]]:
    """(table lines, failure lines) of one chapter; failures include missing claims."""
    seeds = list(by_seed)
    per_seed = {s: keyed(by_seed[s]) for s in seeds}
    order: list[tuple[str, int]] = []
    for s in seeds:
        order += [k for k in per_seed[s] if k not in order]
    head = f"{'':4}{'claim':<{STATEMENT_WIDTH}}" + "".join(
        f"  {'seed ' + str(s):<{CELL_WIDTH}}" for s in seeds)
    lines = [f"{name}: {len(order)} claims × {len(seeds)} seeds", head]
    failures = []
    for i, key in enumerate(order, 1):
        statement = key[0] if len(key[0]) <= STATEMENT_WIDTH else \
            key[0][:STATEMENT_WIDTH - 1] + "…"
        cells = [cell_text(per_seed[s].get(key)) for s in seeds]
        lines.append(f"{i:>3} {statement:<{STATEMENT_WIDTH}}" +
                     "".join(f"  {c:<{CELL_WIDTH}}" for c in cells))
        for s in seeds:
            r = per_seed[s].get(key)
            v = verdict_of(r)
            if v == "holds":
                continue
            if v == "missing":
                why = ("not stated at this seed (the sentence changes with the draws, or an "
                       "earlier cell failed)")
            else:
                why = f"{r.get('verdict', '')} ({r.get('evidence', '')})"
                if r.get("suggestion"):
                    why += f" → suggested: {r['suggestion']}"
            failures.append(f"{name} [{i}] seed {s}: {key[0]!r}: {why}")
    for s, err in errors.items():
        if err:
            failures.append(f"{name} seed {s}: the chapter stopped: {err}")
            lines.append(f"    seed {s}: stopped by a cell error: {err}")
    return lines, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="chapters to check (default: notebooks/0*.ipynb)")
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"],
                        help="course seeds (TUTORIAL_SEED) to run each chapter at")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--json", type=Path, help="write every record to this JSON file")
    parser.add_argument("--keep", type=Path, help="save the executed copies in this folder")
    args = parser.parse_args(argv)
    # "--seeds 0 1 2 notebooks/01_inference.ipynb": the seeds end where the paths begin
    numbers = [t for t in args.seeds if t.lstrip("-").isdigit()]
    args.notebooks = [Path(t) for t in args.seeds if t not in numbers] + args.notebooks
    args.seeds = [int(t) for t in numbers]
    if not args.seeds or any(s < 0 for s in args.seeds):
        parser.error("--seeds must be non-negative integers")
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    all_failures, dump = [], {}
    with tempfile.TemporaryDirectory(prefix="check_claims_") as tmp:
        for path in paths:
            by_seed, errors = {}, {}
            for seed in args.seeds:
                report = Path(tmp) / f"{path.stem}.seed{seed}.jsonl"
                start = time.perf_counter()
                errors[seed] = run_notebook(path, seed, report, args.timeout, args.keep)
                by_seed[seed] = read_report(report)
                print(f"{path.name} seed {seed}: {len(by_seed[seed])} claims, "
                      f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
            lines, failures = table(path.name, by_seed, errors)
            print("\n".join(lines) + "\n", flush=True)
            all_failures += failures
            dump[path.name] = {"records": {str(s): r for s, r in by_seed.items()},
                               "errors": {str(s): e for s, e in errors.items()}}
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1, ensure_ascii=False))
    if all_failures:
        print(f"{len(all_failures)} failure(s):")
        print("\n".join(f"  {f}" for f in all_failures))
        return 1
    print(f"every claim holds at seeds {', '.join(map(str, args.seeds))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
