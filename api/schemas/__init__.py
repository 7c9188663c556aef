"""Request and response bodies of the audience routers, one module per audience. Each is a pydantic model
with examples (the OpenAPI document shows them) and, for responses, an `of(...)` that renders a domain
value; no business rule lives here."""
