"""Checks of prunekit on device_map-sharded models (several GPUs, or one GPU plus the CPU)."""
