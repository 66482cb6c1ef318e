"""A least-recently-used cache for the thumbnail service."""


class LRUCache:
    """A mapping of at most `capacity` entries. When a new key would make it hold more, the least recently used
    entry is evicted first. Reading an entry with get() and writing it with put() both count as using it;
    `key in cache`, len() and keys() do not."""

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._data = {}
        self._order = []  # the keys, least recently used first

    def get(self, key, default=None):
        """The value of key (and key counts as just used), or default when it is not cached."""
        if key in self._data:
            return self._data[key]
        return default

    def put(self, key, value):
        """Cache value under key (key counts as just used), evicting the least recently used entry if needed."""
        if len(self._data) >= self.capacity:
            oldest = self._order.pop(0)
            del self._data[oldest]
        self._data[key] = value
        self._order.append(key)

    def __contains__(self, key):
        return key in self._data

    def __len__(self):
        return len(self._data)

    def keys(self):
        """The cached keys, least recently used first."""
        return list(self._order)
