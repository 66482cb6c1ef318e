"""TARS's edges: the phone line, the HTTP API, the dashboard and progress to n8n/Discord; every vendor format
lives here."""
