"""The site's own parts, built on the sign-in unit (flask_logto): its settings, private notes (with their
migrations), the Hugging Face Hub page, its languages (with their catalogs) and the Space's setup page.
`flask_app.create_app()` puts them together."""
