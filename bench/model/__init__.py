"""Records and the one JSON path: workloads, strategies, results, derived figures, files."""
