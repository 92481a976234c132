"""Test support shipped with the tests, not the package: synthetic result records (:mod:`support.synth`)."""
