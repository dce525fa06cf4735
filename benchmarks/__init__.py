"""prunekit benchmarks: efficiency and accuracy harnesses (import from the repository root)."""
