-- The log, the stream heads and the consumers' checkpoints. Every name is unqualified: the
-- migration runs with search_path set to the store's schema.

-- Positions are taken only by append_events, never by a column default: see there why.
-- CACHE 1 (the default) keeps them increasing across sessions.
CREATE SEQUENCE events_position_seq AS bigint;

CREATE TABLE events (
    position    bigint      NOT NULL,
    id          text        NOT NULL,
    stream      text        NOT NULL,
    version     bigint      NOT NULL,
    type        text        NOT NULL,
    -- bytea and json, not jsonb: the store never looks inside, and jsonb halves replay reads.
    data        bytea,
    metadata    json        NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    prev_hash   bytea,
    hash        bytea       NOT NULL,
    -- The writing transaction: ReadAll returns an event only once every transaction that may
    -- still add a lower position has ended. It also tells which events one append wrote.
    tx          xid8        NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (position),
    CONSTRAINT events_id_key UNIQUE (id),
    CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);
ALTER SEQUENCE events_position_seq OWNED BY events.position;

-- One row per stream: its version and the hash the next event chains to. Appends serialize
-- per stream on this row, and only on it.
CREATE TABLE streams (
    stream  text   NOT NULL,
    version bigint NOT NULL,
    hash    bytea  NOT NULL,
    CONSTRAINT streams_pkey PRIMARY KEY (stream)
) WITH (fillfactor = 80); -- room for HOT updates of the head

CREATE TABLE checkpoints (
    name       text        NOT NULL,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkpoints_pkey PRIMARY KEY (name)
);

-- append_events appends a batch of appends, each to one stream and each on its own: one whose
-- stream head moved writes nothing and returns the actual head (r_appended false), the others
-- go on. Append i is p_counts[i] consecutive elements of the event arrays, whose hashes the
-- caller chained to the head it expects (p_heads[i], p_head_hashes[i]). Callers order a
-- batch by stream, so that concurrent batches lock stream heads in one order.
--
-- It must be the first write of its transaction: the transaction id is taken together with
-- the positions, under a lock held only for that instant, so that position order is
-- transaction id order. A reader that returns only events of transactions older than every
-- running one (pg_snapshot_xmin) therefore never returns a position while a lower one may
-- still commit, and one that also returns an event right after the previous one never skips
-- one either. The lock is a session lock released at once, not held until commit, so
-- concurrent appends still share WAL flushes.
--
-- Each append is two statements on unique keys, whose plans stay right however the tables
-- grow: a set-wise version of this function was faster for large batches but slower for the
-- common one-append call, and at the mercy of generic plans made when the tables were small.
CREATE FUNCTION append_events(
    p_streams     text[],
    p_heads       bigint[],
    p_head_hashes bytea[],
    p_counts      int[],
    p_ids         text[],
    p_types       text[],
    p_data        bytea[],
    p_metadata    text[],
    p_occurred_at timestamptz[],
    p_recorded_at timestamptz[],
    p_hashes      bytea[])
RETURNS TABLE (r_appended boolean, r_version bigint, r_hash bytea, r_position bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_total int := cardinality(p_ids);
    v_key   int := 'events_position_seq'::regclass::oid::int;
    v_tx    xid8;
    v_first bigint;
    v_off   int := 0;
    v_head  bigint;
    n       int;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'append_events must be the first write of its transaction';
    END IF;
    BEGIN
        PERFORM pg_advisory_lock(1702260340, v_key);
        v_tx := pg_current_xact_id();
        v_first := nextval('events_position_seq');
        IF v_total > 1 THEN
            PERFORM setval('events_position_seq', v_first + v_total - 1);
        END IF;
        PERFORM pg_advisory_unlock(1702260340, v_key);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        -- A session lock outlives the transaction: never leave it to a pooled connection.
        PERFORM pg_advisory_unlock(1702260340, v_key);
        RAISE;
    END;

    FOR a IN 1 .. cardinality(p_streams) LOOP
        n := p_counts[a];
        v_head := p_heads[a];
        IF v_head = 0 THEN
            INSERT INTO streams (stream, version, hash)
            VALUES (p_streams[a], n, p_hashes[v_off + n])
            ON CONFLICT (stream) DO NOTHING;
        ELSE
            UPDATE streams SET version = v_head + n, hash = p_hashes[v_off + n]
            WHERE stream = p_streams[a] AND version = v_head AND hash = p_head_hashes[a];
        END IF;
        IF FOUND THEN
            INSERT INTO events (position, id, stream, version, type, data, metadata,
                                occurred_at, recorded_at, prev_hash, hash, tx)
            SELECT v_first + v_off + i - 1, p_ids[v_off + i], p_streams[a], v_head + i,
                   p_types[v_off + i], p_data[v_off + i], p_metadata[v_off + i]::json,
                   p_occurred_at[v_off + i], p_recorded_at[v_off + i],
                   CASE WHEN i = 1 THEN p_head_hashes[a] ELSE p_hashes[v_off + i - 1] END,
                   p_hashes[v_off + i], v_tx
            FROM generate_series(1, n) AS i;
            r_appended := true;
            r_version := v_head + n;
            r_hash := p_hashes[v_off + n];
            r_position := v_first + v_off + n - 1;
        ELSE
            r_appended := false;
            r_version := NULL;
            r_hash := NULL;
            r_position := NULL;
            SELECT s.version, s.hash INTO r_version, r_hash FROM streams s WHERE s.stream = p_streams[a];
            r_version := coalesce(r_version, 0);
        END IF;
        RETURN NEXT;
        v_off := v_off + n;
    END LOOP;
END
$$;
