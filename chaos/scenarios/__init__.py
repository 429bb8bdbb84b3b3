"""One module per row of issue 11's table, in its order; each has NAME, LOAD, MUST and `run`."""
