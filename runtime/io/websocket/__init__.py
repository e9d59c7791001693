"""The websocket connector (WEBSOCKET.md): source and sink, in server mode (Oort's data server) or client mode.

``connector`` holds the factories the registry uses; ``conf`` the conf group; ``hub``/``server_mode`` the
global data server and its users; ``client``/``tls``/``client_mode`` the dialled, shared connections.
"""
