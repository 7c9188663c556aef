"""One router per audience. Routes parse, call one function, and render; no business rule lives here."""
