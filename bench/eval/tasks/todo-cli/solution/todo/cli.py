"""The `todo` command: `todo [--file PATH] add TITLE`, `todo [--file PATH] list [--pending]`,
`todo [--file PATH] done ID`."""

import argparse
import sys

from todo.store import TodoStore


def line(item):
    return f"[{'x' if item['done'] else ' '}] {item['id']} {item['title']}"


def build_parser():
    parser = argparse.ArgumentParser(prog="todo")
    parser.add_argument("--file", default="todo.json", help="the list's file (default: todo.json)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add an item")
    add.add_argument("title")
    listing = commands.add_parser("list", help="list the items")
    listing.add_argument("--pending", action="store_true", help="only the items not done yet")
    done = commands.add_parser("done", help="mark an item done")
    done.add_argument("id", type=int)
    return parser


def main(argv=None, out=None, err=None):
    """Run the command line; the exit status. out and err default to sys.stdout and sys.stderr."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    store = TodoStore(args.file)
    if args.command == "add":
        item_id = store.add(args.title)
        print(f"Added {item_id}: {args.title}", file=out)
    elif args.command == "list":
        for item in store.items():
            if not (args.pending and item["done"]):
                print(line(item), file=out)
    elif args.command == "done":
        try:
            item = store.mark_done(args.id)
        except KeyError:
            print(f"No item {args.id}", file=err)
            return 1
        print(f"Done: {item['title']}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
