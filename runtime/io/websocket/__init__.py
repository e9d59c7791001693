"""The websocket connector: source and sink, in server mode (Oort's data server) or client mode (Oort dials).

``connector`` holds the factories and hooks the registry uses; ``conf`` the conf group. Server mode:
``server`` (the engine's refcounted data server), ``endpoint`` (one URL path: auth, read, deliver, write),
``wire`` (websocket on wsproto: batched reads and writes), ``server_mode`` (the source and sink). Client mode:
``client`` (one shared connection and its reconnect loop), ``pool`` (the engine's shared connections), ``tls``
(targets and dialling), ``client_mode`` (the source and sink).
"""
