-- AI decisions synced from an edge (stream 'ai_decisions') keep the seq of
-- their edge record: (edge_id, edge_seq) names the record, and the unique
-- index makes a second copy of one record impossible. Decisions appended
-- directly have no edge_seq (NULL) and are not constrained.
ALTER TABLE ai_decisions ADD COLUMN IF NOT EXISTS edge_seq bigint;
CREATE UNIQUE INDEX IF NOT EXISTS ai_decisions_edge_seq ON ai_decisions (edge_id, edge_seq)
    WHERE edge_seq IS NOT NULL;
