"""A pod process: its charts wired to a bus, the background daemon, the local chef, the control socket, hand-off of builds."""
