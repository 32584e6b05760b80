"""What both apps need and neither owns: settings readers, the error envelope and request ids,
the Postgres pool and migration runner, the Redis client and Lua scripts, domain types.

`common` never imports `gateway` or `control_plane` (checked by import-linter in CI).
"""
