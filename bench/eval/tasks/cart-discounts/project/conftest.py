# Makes the shop package importable from tests/ whichever way pytest is started.
