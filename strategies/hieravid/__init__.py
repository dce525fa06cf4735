"""HieraVid (arXiv 2604.01881): segment-, frame- and layer-level pruning, as composable stages."""
