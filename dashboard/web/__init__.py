"""The pages: URL views, what each page shows (`pages`, `feeds`, `filters`), /healthz, and markdown.

It reads models and never writes the mirror; it imports neither an upstream nor the live path.
"""
