"""Re-execute chapters in place, the way they ship: outputs and widget snapshots saved.

    python scripts/execute_notebooks.py                 # every chapter
    python scripts/execute_notebooks.py notebooks/02_explainability.ipynb

Progress bars are switched off (``TQDM_DISABLE=1``) so the saved notebook does not show a
half-finished bar; learners running the chapter see them. Prints each chapter's wall time.
Each chapter is then given the metadata JupyterLab writes (``lab_metadata.py``: its kernelspec,
no stored widget state), so opening it in JupyterLab changes nothing.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab_metadata  # noqa: E402  (scripts/ is not a package)


def execute(path: Path, timeout: int = 900) -> float:
    """Execute ``path`` in its folder and write it back; returns the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    os.environ["TQDM_DISABLE"] = "1"
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:  # on an error the outputs up to the failing cell are kept, to read what went wrong
        nbformat.write(nb, path)
        lab_metadata.normalise(path)
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    for path in paths:
        print(f"{path.name}: {execute(path):.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
