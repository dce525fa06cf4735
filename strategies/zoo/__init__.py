"""Peer methods from the literature, each composed from prunekit stages."""
