-- Vectors sent as their parts (store.Record.IsVectorRecord) are kept in
-- the vectors table only, with their record checksum here; they have no
-- edge_records row. Rows written before keep their edge_records row and a
-- NULL checksum.
ALTER TABLE vectors ADD COLUMN checksum INTEGER;
