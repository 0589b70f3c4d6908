"""``python -m worker.server [--host H] [--port P] [--insecure]``: ``skillq serve``."""

from __future__ import annotations

import argparse

from .app import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m worker.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--insecure", action="store_true")
    options = parser.parse_args()
    serve(options.host, options.port, insecure=options.insecure)


if __name__ == "__main__":
    main()
