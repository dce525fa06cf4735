"""Built-in strategies, installed as ``prunekit.strategies`` and registered like any plugin."""
