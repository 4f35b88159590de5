"""Run one dispatcher worker: `python -m dispatcher`."""
import sys

from dispatcher.app import create_app
from dispatcher.config import DispatcherConfig


def main() -> None:
    app = create_app(DispatcherConfig.from_env())
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
