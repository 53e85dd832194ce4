"""The HTTP routes of the model server, one module per concern; the logic lives beside them."""
