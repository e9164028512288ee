"""What a person reads: figures, tables and the HTML report."""
