"""``kacjax-prepare NAME --source DIR --data_dir DATA_DIR``: an image dataset from its official files.

Writes ``DATA_DIR/<tfds name>/<version>/`` in the layout ``tfds build --file_format=array_record``
makes (docs/data.md), with no network and no TensorFlow. Prints the sha256 of each source file and
whether it is the official one. A missing or malformed file: one line, ``kacjax-prepare: error:
...``, exit status 2, nothing written. A prepared folder is left as it is.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from kacjax.data.prepare import DATASETS, SourceError, prepare
from kacjax.runtime import logs


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kacjax-prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=list(DATASETS), help="the dataset: the configs' data.name")
    p.add_argument(
        "--source", required=True, help="folder holding the official files under their official names"
    )
    p.add_argument(
        "--data_dir", required=True, help="the TFDS data directory to write into (the configs' data.data_dir)"
    )
    return p


def run(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point (``argv`` without the program name; default ``sys.argv[1:]``)."""
    args = _parser().parse_args(argv)
    source, data_dir = (os.path.abspath(os.path.expanduser(p)) for p in (args.source, args.data_dir))
    try:
        prepare(args.name, source, data_dir, log=logs.info)
    except (SourceError, OSError) as err:
        reason = err if isinstance(err, SourceError) else f"cannot write into {data_dir}: {err}"  # a full disk too
        print(f"kacjax-prepare: error: {' '.join(str(reason).split())}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
