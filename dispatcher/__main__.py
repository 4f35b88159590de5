"""Run one dispatcher worker: `python -m dispatcher`."""
import sys

from dispatcher.app import create_app
from dispatcher.config import DispatcherConfig
from dispatcher.metrics import serve


def main() -> None:
    config = DispatcherConfig.from_env()
    app = create_app(config)
    serve(config.metrics_port)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
