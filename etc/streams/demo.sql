-- Streams and tables created at startup, in file-name order. Statements are separated by ';'.
-- A definition already in the catalog with the same text is left alone; a changed one replaces it.

-- A schemaless stream fed by the in-process memory bus: publish with `POST /memory/demo`
-- or from another rule's memory sink (`{"memory": {"topic": "demo"}}`).
CREATE STREAM demo () WITH (TYPE="memory", DATASOURCE="demo", FORMAT="json");
