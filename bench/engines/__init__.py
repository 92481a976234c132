"""Execution engines: the shared dispatch loop, local worker processes, Ray; worker environments and devices."""
