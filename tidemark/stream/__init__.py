"""The runtime that owns every consume loop (scorer, joiner, monitor): a service is a handler.

``handler`` (what a service fills in), ``records`` (raw records into messages or dead letters),
``loop`` (the poll loop), ``commits`` and ``inflight`` (when offsets are committed),
``service`` (the process around the loop).
"""
