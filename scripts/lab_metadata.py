"""Give the chapters the notebook metadata JupyterLab writes, so opening one changes nothing.

    python scripts/lab_metadata.py                 # every chapter, in place
    python scripts/lab_metadata.py --check         # exit 1 if a chapter would change
    python scripts/lab_metadata.py notebooks/02_explainability.ipynb

Two things make JupyterLab rewrite a chapter merely opened (the tab turns modified and the next
autosave writes the file, so a later ``git pull`` meets local changes):

* it writes the running kernel's spec into ``metadata.kernelspec`` (``display_name``
  "Python 3 (ipykernel)", not the "Python 3" other tools write). This script writes the spec of
  the environment's ``python3`` kernel — exactly what JupyterLab would.
* with the widget manager's ``saveState`` on (the course's setting, ``scripts/lab_settings.py``),
  loading the widget state that ``execute_notebooks.py`` stores in ``metadata.widgets`` marks
  the notebook modified, and the save writes that state back in the manager's own form. This
  script removes ``metadata.widgets``. Nothing is lost: a chapter as shipped is untrusted, so
  JupyterLab shows each explorer's PNG snapshot from its output, never the widget state; once a
  learner has run the chapter, autosave stores the live state.

Everything else is left as it is. Run it after re-executing or merging chapters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "python3"


def lab_kernelspec(name: str = KERNEL) -> dict:
    """``metadata.kernelspec`` as JupyterLab writes it for the kernel ``name``."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(name)
    return {"display_name": spec.display_name, "language": spec.language, "name": name}


def normalise(path: Path, check: bool = False) -> bool:
    """Write JupyterLab's kernelspec into ``path`` and drop the saved widget state (unless
    ``check``); True if it changed."""
    nb = nbformat.read(path, as_version=4)
    wanted = lab_kernelspec(nb.metadata.get("kernelspec", {}).get("name", KERNEL))
    if dict(nb.metadata.get("kernelspec", {})) == wanted and "widgets" not in nb.metadata:
        return False
    if not check:
        nb.metadata["kernelspec"] = wanted
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="only check, exit 1 on a change")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    changed = [p for p in paths if normalise(p, args.check)]
    verb = "would change" if args.check else "changed"
    print(f"{verb}: {', '.join(p.name for p in changed)}" if changed else
          "every notebook has JupyterLab's kernel metadata")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
