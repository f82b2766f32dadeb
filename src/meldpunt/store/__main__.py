"""``python -m meldpunt.store``: migration chores for developers and operators."""

from __future__ import annotations

import argparse

from meldpunt.store.migrate import init_db, new_revision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m meldpunt.store")
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="autogenerate the next migration")
    revision.add_argument("message")
    upgrade = commands.add_parser("upgrade", help="migrate a database to head")
    upgrade.add_argument("url", nargs="?", help="default: the configured database")
    args = parser.parse_args(argv)
    if args.command == "revision":
        print(new_revision(args.message))
    else:
        init_db(args.url)


if __name__ == "__main__":
    main()
