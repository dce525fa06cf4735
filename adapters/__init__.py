"""Model adapters, installed as ``prunekit.adapters`` and registered like any plugin."""
