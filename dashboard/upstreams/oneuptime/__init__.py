"""OneUptime: `client` speaks its API as it really behaves; `sync` mirrors incidents and public notes;
`writeback` delivers admin edits from the outbox."""
