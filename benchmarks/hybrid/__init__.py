"""Studies for hybrid-attention models (Qwen3.5)."""
