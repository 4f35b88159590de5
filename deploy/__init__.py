"""How Mercury runs: the local single-machine stack and the production manifests."""
