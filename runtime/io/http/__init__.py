"""HTTP connectors on httpx: the ``httppull`` source (poll a URL at an interval) and the ``rest`` sink (one request
per message). ``connector`` holds the factories the registry plugs in; ``conf`` the settings both read."""
