"""The HTTP push source (``TYPE="httppush"``): clients POST or PUT bodies to a path of Oort's global data server.

``connector`` holds the factory and the conf check the registry uses; ``conf`` the conf group
(``etc/sources/httppush.toml``). The data server (``runtime/io/websocket/server.py``) hands every plain HTTP
request, one that is not a websocket upgrade, to ``connection`` (HTTP/1.1 on h11: keep-alive, limits, answers),
which asks ``endpoint`` (one URL path: auth, decoding once per stream, admission into the rules' buffers) to
take the body.
"""
