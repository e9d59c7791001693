CREATE STREAM sensors (id STRING, temperature FLOAT) WITH (TYPE="memory", DATASOURCE="demo/sensors");
