"""Install the JupyterLab settings the course ships into this environment.

    python scripts/lab_settings.py            # install (idempotent)
    python scripts/lab_settings.py --check    # exit 1 if they are missing or differ

JupyterLab reads every ``{sys.prefix}/share/jupyter/lab/settings/overrides.d/*.json`` as the
environment's defaults (a learner's own settings still win). The course ships one file,
``jupyter-config/lab/settings/overrides.d/gradients-at-inference.json``, which turns on the
widget manager's ``saveState``: every save — the learner's and JupyterLab's autosave, every
120 s by default — writes the live widgets' state into the notebook. Without it an autosaved
chapter keeps its explorer outputs but not their models, and reopening it shows "Error
displaying widget: model not found" in place of every explorer.

``pip install .`` installs the file itself (pyproject's ``data-files``); an editable install
(``pip install -e .``) does not copy data files, which is why README's set-up runs this script.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "jupyter-config" / "lab" / "settings" / "overrides.d"


def target_dir(prefix: str | Path = sys.prefix) -> Path:
    """Where JupyterLab of the environment at ``prefix`` reads its overrides."""
    return Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.d"


def missing(prefix: str | Path = sys.prefix) -> list[str]:
    """The shipped settings files that are absent from (or differ in) ``prefix``."""
    target = target_dir(prefix)
    return [f.name for f in sorted(SHIPPED.glob("*.json"))
            if not (target / f.name).is_file() or not filecmp.cmp(f, target / f.name, False)]


def install(prefix: str | Path = sys.prefix) -> list[Path]:
    """Copy every shipped settings file into ``prefix``; returns the paths written."""
    target = target_dir(prefix)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in missing(prefix):
        shutil.copyfile(SHIPPED / name, target / name)
        written.append(target / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, exit 1 if missing")
    parser.add_argument("--prefix", default=sys.prefix, help="environment (default: this one)")
    args = parser.parse_args(argv)
    if args.check:
        gone = missing(args.prefix)
        print(f"missing in {target_dir(args.prefix)}: {', '.join(gone)}" if gone else
              f"JupyterLab settings installed in {target_dir(args.prefix)}")
        return 1 if gone else 0
    written = install(args.prefix)
    print("\n".join(f"installed {p}" for p in written) or
          f"already installed in {target_dir(args.prefix)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
