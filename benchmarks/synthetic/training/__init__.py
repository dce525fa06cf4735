"""Training the bundled tiny video LLM and writing its model card: in the source tree only, not in the wheel."""
