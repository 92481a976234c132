"""Measurement: the sampler, NVML, energy, the machine fingerprint, calibration, FLOP counts."""
