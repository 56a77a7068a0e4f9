"""Specs: the sweep file's schema (sweep), its YAML reading (io), script specs, the mixer search space."""
