-- A websocket stream in server mode (the [default] group of sources/websocket.toml has no addr): clients
-- connect to ws://<httpServerIp>:<httpServerPort>/api/data (default port 10081) and send JSON objects.
-- Its rule (rules/websocket_demo.json) logs them and echoes them to clients of ws://…:10081/api/results.
CREATE STREAM wsdemo () WITH (TYPE="websocket", DATASOURCE="/api/data", FORMAT="json");
