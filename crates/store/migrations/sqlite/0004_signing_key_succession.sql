-- Each new signing key names the key it succeeds ('' for the first key of
-- a store), and no two keys may succeed the same one: replicas that start
-- at once on an empty store, or rotate at once, create exactly one key,
-- settled by this index rather than by a check-then-insert race. Keys from
-- before this migration have NULL, which the index does not constrain.
ALTER TABLE signing_keys ADD COLUMN succeeds TEXT;
CREATE UNIQUE INDEX signing_keys_succeeds ON signing_keys (succeeds);
