"""The dashboard: server-rendered pages for creators, developers and admins.

Served by the control plane itself, on its own services (no second backend): every page calls
the same service functions as the API routes, so every rule the API enforces holds here.
Layout: `routes.py` (the page table and the public list), `pages.py` (the wrapper every page
goes through), `session.py` and `csrf.py` (cookie sessions and CSRF), `views/` (one module per
area), `templates/` (Jinja2), `static/` (one stylesheet, two small scripts).
"""
