"""The operator console: a web page for the live link and for simulation results."""
