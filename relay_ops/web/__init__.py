"""HTTP entry points: the JSON API (``web.api``) and, later, pages for people."""
