-- Edge payloads and packed vectors are mostly incompressible floats: pglz
-- spent about 60% of IngestBatch's time compressing them for little gain.
-- Store them out of line without compression. Existing rows are unchanged;
-- new rows take the new storage.
ALTER TABLE edge_records ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE vectors ALTER COLUMN vector SET STORAGE EXTERNAL;
