"""Generic stages that many strategies share: one segment, proportional allocation, simple selectors
and schedulers."""
