"""The demo and report tooling: plays a drift on the running stack and tells what the loop did.

It drives the simulator and the supervisor from outside; no service imports it.
"""
