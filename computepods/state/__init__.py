"""What persists: the state database, content hashes and the project lock."""
