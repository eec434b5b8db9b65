"""What only the GitHub workflows run: never a `local.Command`, so nothing here lands in state."""
