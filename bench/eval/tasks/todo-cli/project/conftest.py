# Makes the todo package importable from tests/ whichever way pytest is started.
