"""``python -m kacjax``: the same entry point as the ``kacjax`` console script."""

from kacjax.cli.main import run

if __name__ == "__main__":
    run()
