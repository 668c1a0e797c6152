"""What runs beside the site, not in it: the local identity provider for development and tests (devidp), the
`flask logto setup|doctor` commands that configure a Logto tenant (logto_cli) and `flask dev` (flask_dev.py)."""
