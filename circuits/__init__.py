"""Brian2 circuit builders: one module per circuit kind, each with its equations and maths."""
