"""Built-in workloads. Each module holds one Workload; none imports TensorFlow at import time."""
