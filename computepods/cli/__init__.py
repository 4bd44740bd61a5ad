"""The command-line clients: cpod, cpctrl, cpod up/down, cpod watch, and build progress."""
