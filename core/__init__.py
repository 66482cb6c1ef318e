"""TARS's core: tasks, the worker, the coding loop and its guards. It never imports communication/ and holds no
vendor format."""
