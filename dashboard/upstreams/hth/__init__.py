"""Helix TeamHub: `client` reads and parses the events API; `sync` mirrors it into `Event` rows."""
