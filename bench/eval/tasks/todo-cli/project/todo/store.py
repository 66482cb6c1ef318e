"""The to-do list's file: a JSON list of {"id", "title", "done"} objects."""

import json
from pathlib import Path


class TodoStore:
    def __init__(self, path):
        self.path = Path(path)

    def items(self):
        """Every item, oldest first ([] when the file does not exist yet)."""
        if not self.path.exists():
            return []
        return json.loads(self.path.read_text())

    def _save(self, items):
        self.path.write_text(json.dumps(items, indent=2))

    def add(self, title):
        """Add an item that is not done; its id (one more than the highest so far)."""
        items = self.items()
        item_id = max((item["id"] for item in items), default=0) + 1
        items.append({"id": item_id, "title": title, "done": False})
        self._save(items)
        return item_id

    def mark_done(self, item_id):
        """Mark the item done and return it; KeyError when there is no item with that id."""
        items = self.items()
        for item in items:
            if item["id"] == item_id:
                item["done"] = True
                self._save(items)
                return item
        raise KeyError(item_id)
