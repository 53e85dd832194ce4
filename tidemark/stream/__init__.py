"""The runtime shared by every stream service (scorer, joiner, monitor): records and the loop."""
