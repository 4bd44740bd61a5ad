"""`python -m computepods.cli`: the cpod command (the local chef and the tests run it so)."""
from computepods.cli.quick import run

run()
