"""The project file: its model, its loader, path patterns and the rule packs."""
