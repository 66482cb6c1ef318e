"""A least-recently-used cache for the thumbnail service."""

from collections import OrderedDict


class LRUCache:
    """A mapping of at most `capacity` entries. When a new key would make it hold more, the least recently used
    entry is evicted first. Reading an entry with get() and writing it with put() both count as using it;
    `key in cache`, len() and keys() do not."""

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._data = OrderedDict()  # least recently used first

    def get(self, key, default=None):
        """The value of key (and key counts as just used), or default when it is not cached."""
        if key not in self._data:
            return default
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key, value):
        """Cache value under key (key counts as just used), evicting the least recently used entry if needed."""
        if key in self._data:
            self._data.move_to_end(key)
        elif len(self._data) >= self.capacity:
            self._data.popitem(last=False)
        self._data[key] = value

    def __contains__(self, key):
        return key in self._data

    def __len__(self):
        return len(self._data)

    def keys(self):
        """The cached keys, least recently used first."""
        return list(self._data)
